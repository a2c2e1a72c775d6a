"""The media repository: uploads, downloads, thumbnails and URL previews."""
