import { Console } from 'node:console';
import type { Writable } from 'node:stream';
import { Logger } from '@aws-lambda-powertools/logger';

export type LogLevelName = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export interface LoggerOptions {
  serviceName: string;
  level?: LogLevelName;
  /** Where JSON lines go (default stdout). The benchmark points this at a discarding stream. */
  stream?: Writable;
}

/** Structured JSON logs (Powertools); the Lambda context is injected by middy in each handler. */
export function createLogger(options: LoggerOptions): Logger {
  const logger = new Logger({
    serviceName: options.serviceName,
    logLevel: (options.level ?? 'info').toUpperCase() as 'INFO',
  });
  if (options.stream) {
    // Powertools writes through a private Console bound to stdout; rebind it to the stream.
    (logger as unknown as { console: Console }).console = new Console({
      stdout: options.stream,
      stderr: options.stream,
    });
  }
  return logger;
}

export type { Logger };
