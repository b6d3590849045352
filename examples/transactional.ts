/**
 * Enqueue in the application's own transaction, beside its business row: both exist or neither.
 * DATABASE_URL is the engine's database, as a role that is a member of dte_api (or has EXECUTE
 * on the enqueue functions), with the engine's tables on its search_path. See schema.sql.
 */
import { enqueue } from 'durable-task-engine/client';
import pg from 'pg';
import { sendEmail } from './tasks.ts';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });

export async function placeOrder(customerEmail: string, total: number): Promise<string> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ id: string }>(
      'INSERT INTO orders (customer_email, total) VALUES ($1, $2) RETURNING id',
      [customerEmail, total],
    );
    const orderId = rows[0]!.id;
    await enqueue(
      client,
      sendEmail,
      { to: customerEmail, subject: `Order ${orderId} confirmed` },
      {
        idempotencyKey: `order-confirmation-${orderId}`,
      },
    );
    await client.query('COMMIT'); // the job counts as submitted only now
    return orderId;
  } catch (err) {
    await client.query('ROLLBACK'); // no order, no job
    throw err;
  } finally {
    client.release();
  }
}

if (process.argv[2] === 'run') {
  console.log('order', await placeOrder('someone@example.com', 42));
  await pool.end();
}
