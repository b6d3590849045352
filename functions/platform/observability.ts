import { randomUUID } from 'node:crypto';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import { type ContainerMetrics, createContainerMetrics, type FunctionName } from './metrics.ts';
import { createPushgateway, type Pushgateway } from './pushgateway.ts';

export interface FunctionObservability {
  metrics: ContainerMetrics;
  gateway: Pushgateway;
  /**
   * Pushes this container's figures, within PUSH_TIMEOUT_MS and never past the invocation's
   * remaining time less `reserveMs`. Never throws; a failure is logged and counted.
   */
  pushContainer(remainingMs: number, reserveMs?: number): Promise<void>;
}

/** A container id that is stable for the life of a Lambda container (cold start to recycle). */
export function containerId(config: Pick<Config, 'AWS_LAMBDA_LOG_STREAM_NAME'>): string {
  return config.AWS_LAMBDA_LOG_STREAM_NAME ?? `local-${randomUUID()}`;
}

export function createObservability(
  fn: FunctionName,
  config: Config,
  logger: Logger,
  metrics: ContainerMetrics = createContainerMetrics({ fn, containerId: containerId(config) }),
): FunctionObservability {
  const gateway = createPushgateway({
    url: config.PUSHGATEWAY_URL,
    job: config.PUSHGATEWAY_JOB,
    timeoutMs: config.PUSH_TIMEOUT_MS,
    failures: metrics,
    logger,
  });
  return {
    metrics,
    gateway,
    async pushContainer(remainingMs, reserveMs = 100) {
      if (!gateway.enabled) return;
      await gateway.pushContainer({ fn: metrics.fn, instance: metrics.containerId }, metrics.registry, {
        timeoutMs: Math.min(config.PUSH_TIMEOUT_MS, remainingMs - reserveMs),
      });
    },
  };
}
