/** Holds the event loop until this thread has used `ms` of CPU, however long the machine makes that take. */
export function burnCpu(ms: number): void {
  const start = process.threadCpuUsage();
  for (;;) {
    const used = process.threadCpuUsage(start);
    if ((used.user + used.system) / 1000 >= ms) return;
  }
}
