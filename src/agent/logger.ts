import { pino, type Logger, type LevelWithSilent } from "pino";

/**
 * Structured JSON logs on stdout, one object per line, for the container
 * runtime to collect. No in-process transports: they cost threads and hide
 * crashes.
 */
export function createLogger(level: LevelWithSilent, destination: NodeJS.WritableStream = process.stdout): Logger {
  return pino(
    {
      level,
      base: { component: "netclaim" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
