/**
 * The local engine's GET /metrics: the ledger read from the database (exactly what the reaper
 * pushes) plus this process's own figures and each local function's container registry.
 */
import type { Db } from '../functions/engine/index.ts';
import {
  type ContainerMetrics,
  collectLedger,
  createContainerMetrics,
  createProcessRegistry,
  EXPOSITION_CONTENT_TYPE,
  renderExposition,
} from '../functions/platform/metrics.ts';

export function createLocalMetrics(db: Db) {
  const processRegistry = createProcessRegistry();
  const containers: ContainerMetrics[] = [];
  return {
    contentType: EXPOSITION_CONTENT_TYPE,
    /** A container registry for one local function instance (e.g. consumer slot 0). */
    container(fn: 'api' | 'consumer' | 'reaper', instance: string): ContainerMetrics {
      const m = createContainerMetrics({ fn, containerId: instance });
      containers.push(m);
      return m;
    },
    async render(): Promise<string> {
      return renderExposition(await collectLedger(db), processRegistry, ...containers.map((c) => c.registry));
    },
  };
}
