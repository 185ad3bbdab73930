import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Runs wrong-answer.fixture.ts alone with the integration suite's answer check, and no test rig:
// contract-answers.test.ts runs this to show that an answer outside the contract fails a test.
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../../..', import.meta.url)),
    include: ['test/integration/contract-fixture/*.fixture.ts'],
    setupFiles: ['test/integration/contract-setup.ts'],
    environment: 'node',
  },
});
