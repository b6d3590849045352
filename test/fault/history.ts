/**
 * The history every fault scenario records, one JSON object per line: what the clients were
 * told (enqueue acknowledged, claim, complete ok / fenced / unknown, fail, release, reaper run).
 * "unknown" means the statement's outcome never reached the client (connection lost mid-flight):
 * it may or may not have committed, and the checker allows both.
 */

/** [job id, lease token] */
export type Lease = [string, string];

export type HistoryEvent =
  | { op: 'enqueue'; t: number; seqs: number[]; ids: string[] }
  | { op: 'enqueue-unknown'; t: number; seqs: number[]; error: string }
  | { op: 'claim'; t: number; w: string; ms: number; jobs: Lease[] }
  | { op: 'complete'; t: number; w: string; ms: number; ok: Lease[]; fenced: Lease[] }
  | { op: 'complete-unknown'; t: number; w: string; ms: number; leases: Lease[]; error: string }
  | {
      op: 'fail';
      t: number;
      w: string;
      ms: number;
      lease: Lease;
      outcome: 'queued' | 'failed' | 'fenced' | 'unknown';
    }
  | { op: 'release'; t: number; w: string; ms: number; ok: Lease[]; fenced: Lease[]; unknown: Lease[] }
  | { op: 'db-error'; t: number; w: string; ms: number; kind: string; error: string }
  | { op: 'slow'; t: number; w: string; ms: number; kind: string }
  | {
      op: 'invocation';
      t: number;
      w: string;
      ms: number;
      exitReason: string;
      claimed: number;
      completed: number;
      lost: number;
    }
  | { op: 'reap'; t: number; recovered: number; requeued: number; failed: number }
  | { op: 'reap-unknown'; t: number; error: string };

export class History {
  readonly events: HistoryEvent[] = [];
  add(e: HistoryEvent): void {
    this.events.push(e);
  }
  /** Parses one line a worker printed; ignores anything that is not a history event. */
  addLine(line: string): HistoryEvent | undefined {
    if (!line.startsWith('{"op":')) return undefined;
    try {
      const e = JSON.parse(line) as HistoryEvent;
      this.events.push(e);
      return e;
    } catch {
      return undefined;
    }
  }
  of<K extends HistoryEvent['op']>(op: K): Array<Extract<HistoryEvent, { op: K }>> {
    return this.events.filter((e) => e.op === op) as Array<Extract<HistoryEvent, { op: K }>>;
  }
}
