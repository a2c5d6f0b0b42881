/**
 * The cores maas sizes its workers and threads by: the CPU quota of a container's cgroup (v2's
 * cpu.max, v1's cfs quota and period) caps what the scheduler offers.
 */
import { describe, expect, it } from 'vitest';
import { cgroupCpuLimit } from '../../src/core/cores.js';

describe('cgroup CPU quota', () => {
  it('reads cgroup v2 cpu.max: whole CPUs, rounded down, at least one; "max" is no quota', () => {
    expect(cgroupCpuLimit('max 100000\n', null)).toBeNull();
    expect(cgroupCpuLimit('200000 100000\n', null)).toBe(2);
    expect(cgroupCpuLimit('150000 100000', null)).toBe(1);
    expect(cgroupCpuLimit('50000 100000', null)).toBe(1);
    expect(cgroupCpuLimit('400000', null)).toBe(4); // the period left out: the kernel's default
    expect(cgroupCpuLimit('garbage', null)).toBeNull();
  });

  it('reads cgroup v1 cfs quota and period; -1 is no quota; v2 wins when both are there', () => {
    expect(cgroupCpuLimit(null, { quota: '-1\n', period: '100000\n' })).toBeNull();
    expect(cgroupCpuLimit(null, { quota: '300000\n', period: '100000\n' })).toBe(3);
    expect(cgroupCpuLimit(null, { quota: '', period: '' })).toBeNull();
    expect(cgroupCpuLimit('100000 100000', { quota: '800000', period: '100000' })).toBe(1);
    expect(cgroupCpuLimit(null, null)).toBeNull();
  });
});
