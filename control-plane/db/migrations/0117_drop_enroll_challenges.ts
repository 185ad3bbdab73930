/**
 * Enrollment challenges are HMAC-signed and carry their issue time (0115, issue 17): nothing has
 * written or read enroll_challenges since. Its rows were short-lived (a challenge expires within
 * minutes) and single use now lives in devices.enroll_challenge_at, so nothing in it is worth
 * keeping. Dropping the table drops its index.
 */
export const dropEnrollChallengesMigration = {
  id: '0117_drop_enroll_challenges',
  sql: `DROP TABLE IF EXISTS enroll_challenges;`,
};
