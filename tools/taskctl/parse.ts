import { int8Text, isName, NAMES } from '../../functions/engine/index.ts';
import { UsageError } from './errors.ts';

/** A job id: a positive bigint, kept as a string. */
export function parseId(raw: string): string {
  const id = int8Text(raw);
  if (id === null) throw new UsageError(`invalid job id ${JSON.stringify(raw)}: expected a positive integer`);
  return id;
}

export function parseIds(raws: readonly string[]): string[] {
  return [...new Set(raws.map(parseId))];
}

const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 };
/**
 * Longest duration accepted: 100 years. Far beyond any retention or delay, and well inside what
 * `now() - interval` can compute (99999999999d overflowed it and surfaced as a database error).
 */
export const MAX_DURATION_SECONDS = 36_500 * 86_400;

/** `90s`, `10m`, `1h30m`, `2d`: seconds. A bare number is refused: a unit says what was meant. */
export function parseDuration(raw: string, what = 'duration'): number {
  const text = raw.trim();
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let seconds = 0;
  let consumed = 0;
  for (let m = part.exec(text); m !== null; m = part.exec(text)) {
    seconds += Number(m[1]) * UNIT_SECONDS[m[2]!]!;
    consumed = part.lastIndex;
  }
  if (text.length === 0 || consumed !== text.length || !Number.isFinite(seconds)) {
    throw new UsageError(`invalid ${what} ${JSON.stringify(raw)}: expected e.g. 90s, 10m, 1h30m, 2d`);
  }
  if (seconds > MAX_DURATION_SECONDS)
    throw new UsageError(`invalid ${what} ${JSON.stringify(raw)}: at most 36500d (100 years)`);
  return seconds;
}

export function parseJson(raw: string, what = 'JSON'): unknown {
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new UsageError(`invalid ${what}: ${(err as Error).message}`);
  }
}

export function parseIntInRange(raw: string, what: string, min: number, max: number): number {
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`invalid ${what} ${JSON.stringify(raw)}: expected an integer from ${min} to ${max}`);
  }
  return n;
}

export function parseQueueName(raw: string): string {
  if (!isName('queue', raw))
    throw new UsageError(`invalid queue name ${JSON.stringify(raw)}: ${NAMES.queue.rule}`);
  return raw;
}
