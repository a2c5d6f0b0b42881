/**
 * A thread started from the TypeScript sources (tests, benches) requires its module through tsx's
 * CommonJS hook; dynamic ESM imports (the HDF5 reader) need tsx's ESM hooks registered in that
 * thread too. From the compiled package this does nothing.
 */
let esmHooks: Promise<void> | null = null;

export function sourceHooks(): Promise<void> {
  if (!import.meta.url.endsWith('.ts')) return Promise.resolve();
  const tsx = 'tsx/esm/api'; // a dev dependency: not a static import, so the build never needs it
  esmHooks ??= import(tsx).then((api: { register(): void }) => api.register());
  return esmHooks;
}
