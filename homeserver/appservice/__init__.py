"""Application services: registrations, their client-server side and the queries asked of them."""
