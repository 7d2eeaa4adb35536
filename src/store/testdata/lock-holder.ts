// Takes the lock, tells the parent, then waits to be killed (FileLock test).
import { FileLock } from "../index.ts";

await FileLock.acquire(process.argv[2] ?? "");
process.send?.("locked");
setInterval(() => undefined, 1000);
