import { defineConfig } from 'vitest/config';

// Two projects: pure units run anywhere in milliseconds; integration tests share one test rig
// (dockerd + CNCF registry on loopback) started once by the global setup.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
          // Some units are CPU-bound (the forge gzips 32 MiB layers); on a shared 2-core machine 5 s
          // is not enough. Speed targets live in the benchmarks, never in test timeouts.
          testTimeout: 30_000,
          setupFiles: ['test/scratch-setup.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          // The console's browser test needs the rig too (images for its manifests).
          include: ['test/integration/**/*.test.ts', 'test/browser/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/rig/global-setup.ts'],
          // Answers outside protocol/ fail the test file that caused them; the contract check's file
          // is named before scratch-setup moves TMPDIR, so removing the scratch cannot hide it.
          setupFiles: ['test/integration/contract-setup.ts', 'test/scratch-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
