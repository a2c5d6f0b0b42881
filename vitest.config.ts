import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // The addon spins up native thread pools: forks keep each test file's process separate.
    pool: 'forks',
  },
});
