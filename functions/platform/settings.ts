import type { ConsumerSettings } from '../engine/index.ts';
import type { Config } from './config.ts';

/** The consumer's settings from the parsed environment. */
export function consumerSettings(config: Config): ConsumerSettings {
  return {
    batchSize: config.BATCH_SIZE,
    adaptiveClaims: config.CLAIM_ADAPTIVE,
    claimTargetMs: config.CLAIM_TARGET_MS,
    concurrency: config.CONSUMER_CONCURRENCY,
    leaseSeconds: config.LEASE_SECONDS,
    idleExitMs: config.CONSUMER_IDLE_EXIT_MS,
    pollMs: config.CONSUMER_POLL_MS,
    queues: config.QUEUES,
    advisoryLocks: config.USE_ADVISORY_LOCKS,
    backoffBaseSeconds: config.BACKOFF_BASE_SECONDS,
    maxBackoffSeconds: config.MAX_BACKOFF_SECONDS,
    liveMs: config.WAKE_ON_ENQUEUE ? config.CONSUMER_LIVE_MS : 0,
    stayMs: config.CONSUMER_STAY_MS,
    stayPollMs: config.CONSUMER_STAY_POLL_MS,
    delayStayMs: config.CONSUMER_DELAY_STAY_MS,
  };
}
