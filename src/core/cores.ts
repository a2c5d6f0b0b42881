/**
 * How many cores this process may use: the CPUs the scheduler lets it run on
 * (`availableParallelism()`), capped by its cgroup's CPU quota. Inside a container with a CPU
 * limit — a Kubernetes pod with `limits.cpu: "2"` on a 64-core node — Node 20 still counts the
 * node's cores, and one worker per core would put 64 threads on 2 cores' worth of time.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/**
 * The whole CPUs a cgroup quota allows (at least 1), or null when there is no quota. `v2` is the
 * text of cgroup v2's cpu.max ("max 100000", "200000 100000"); `v1` cgroup v1's
 * cpu.cfs_quota_us and cpu.cfs_period_us (quota -1: none). A fractional limit rounds down, as
 * the Go runtime's automaxprocs does: 1.5 CPUs of time run one worker at full speed, not two
 * throttled.
 */
export function cgroupCpuLimit(v2: string | null, v1: { quota: string; period: string } | null): number | null {
  const limit = (quota: number, period: number) =>
    Number.isFinite(quota) && Number.isFinite(period) && quota > 0 && period > 0
      ? Math.max(1, Math.floor(quota / period))
      : null;
  if (v2 !== null) {
    const [quota, period] = v2.trim().split(/\s+/);
    return quota === 'max' ? null : limit(Number(quota), Number(period ?? 100_000));
  }
  if (v1 !== null) return limit(Number(v1.quota.trim()), Number(v1.period.trim()));
  return null;
}

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

let cached: number | undefined;

/** The cores this process may use: availableParallelism() capped by the cgroup CPU quota (read once). */
export function usableCores(): number {
  if (cached === undefined) {
    let v1: { quota: string; period: string } | null = null;
    for (const dir of ['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpu,cpuacct']) {
      const quota = read(`${dir}/cpu.cfs_quota_us`);
      if (quota !== null) {
        v1 = { quota, period: read(`${dir}/cpu.cfs_period_us`) ?? '' };
        break;
      }
    }
    const quota = cgroupCpuLimit(read('/sys/fs/cgroup/cpu.max'), v1);
    cached = Math.min(availableParallelism(), quota ?? Infinity);
  }
  return cached;
}
