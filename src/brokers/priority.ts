/** Message priorities on the brokers that order by them themselves (memory, SQLite): 9 first. */

/** Clamps a priority to 0–9 (0 when unset). */
export function clampPriority(priority: number | undefined): number {
  if (priority === undefined || !Number.isFinite(priority)) return 0;
  return Math.max(0, Math.min(9, Math.round(priority)));
}
