-- The secretproxy schema belongs to the secretproxy service alone: no other service reads or writes it.
-- The migration runner creates the schema itself (it records migrations inside it); this first
-- migration documents ownership where operators look for it (\dn+ in psql).
COMMENT ON SCHEMA secretproxy IS 'Owned by the Switchboard secretproxy service; other services call its gRPC API.';
