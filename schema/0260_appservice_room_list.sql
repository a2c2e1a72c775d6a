-- Rooms an application service published in the room directory of one of its
-- third-party networks (PUT /directory/list/appservice/{networkId}/{roomId}).
-- Listed by /publicRooms with that network's third_party_instance_id
-- ("<appservice id>|<network id>") or include_all_networks, not in the main list.
CREATE TABLE appservice_room_list (
    appservice_id TEXT NOT NULL,
    network_id TEXT NOT NULL,
    room_id TEXT NOT NULL REFERENCES rooms (room_id),
    PRIMARY KEY (appservice_id, network_id, room_id)
);
CREATE INDEX appservice_room_list_room ON appservice_room_list (room_id);
