-- Dehydrated devices (MSC3814): at most one per user, a device with no access
-- token whose keys others encrypt to while the user is offline. device_data
-- (the client's encrypted pickle of the device) is kept as the client sent it.
CREATE TABLE dehydrated_devices (
    user_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    device_data TEXT NOT NULL,
    -- Deleting the device (DELETE /devices/{deviceId} too) forgets it here.
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
