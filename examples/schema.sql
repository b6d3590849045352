-- The business table beside the engine's jobs table, and the grants the application's role needs.
CREATE TABLE IF NOT EXISTS orders (
  id bigserial PRIMARY KEY,
  customer_email text NOT NULL,
  total numeric(12, 2) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The application's login role: the engine's dte_api group for the enqueue, its own grants for orders.
-- CREATE ROLE shop LOGIN IN ROLE dte_api;
-- GRANT SELECT, INSERT ON orders TO shop;
-- GRANT USAGE ON SEQUENCE orders_id_seq TO shop;
