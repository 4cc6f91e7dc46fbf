DROP TABLE security_events;
DROP TABLE security_incidents;
