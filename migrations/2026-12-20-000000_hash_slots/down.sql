DROP FUNCTION take_hash_slot(text, uuid, integer, interval);
DROP TABLE hash_slots;
