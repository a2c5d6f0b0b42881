/**
 * Runtime controls: which kernels run (the ISA cap) and how many intra-op threads this thread
 * uses, with the kernel list as the addon reports it.
 */
import { fromNative, invalidParameter } from './core/errors.js';
import { checkInteger } from './core/validation.js';
import { ISA_LEVELS, native, type IsaName, type NativeCpuInfo, type NativeCudaInfo } from './native/index.js';

/** What the addon reports: CPU, selected ISA and kernel, every kernel, backends, threads, CUDA. */
export type BackendInfo = NativeCpuInfo & { cuda: NativeCudaInfo };

/**
 * The CPU, the selected ISA/kernel, every kernel in the list, and what CUDA offers here (the
 * devices, or the reason there are none; the first call asks the driver).
 */
export function backendInfo(): BackendInfo {
  return { ...native.cpuInfo(), cuda: native.cudaInfo() };
}

/**
 * Caps the kernels this thread selects (like oneDNN's max ISA); returns the ISA now in use.
 * Models packed earlier keep their kernel; pack again (setWeights or a new model) to switch.
 */
export function setMaxIsa(isa: IsaName): IsaName {
  if (typeof isa !== 'string' || !ISA_LEVELS.includes(isa)) {
    throw invalidParameter(
      'setMaxIsa(isa)',
      `one of ${ISA_LEVELS.map((i) => `'${i}'`).join(', ')}`,
      isa,
      'MAAS_ERR_ISA_INVALID',
    );
  }
  try {
    return native.setMaxIsa(isa);
  } catch (e) {
    throw fromNative(e);
  }
}

/** Sets the intra-op threads of this thread's native pool (1..64). */
export function setThreads(threads: number): void {
  native.setThreads(checkInteger('setThreads(threads)', threads, 1, 64));
}

/** The intra-op threads of this thread's native pool. */
export function getThreads(): number {
  return native.getThreads();
}
