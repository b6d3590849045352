-- The reaper wakes a consumer for the schedule occurrences it materialised ahead (issue 18): it
-- runs the api's wake check, queues_wake (migration 0010, body in functions/wake.sql), which
-- records the wake in queue_wakes as its owner. CREATE OR REPLACE in the function file keeps
-- this grant.
GRANT EXECUTE ON FUNCTION queues_wake(text[], integer) TO dte_reaper;
