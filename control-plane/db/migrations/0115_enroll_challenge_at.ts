/**
 * Stateless enrollment challenges (issue 17): a challenge is HMAC-signed and carries its issue
 * time instead of being a row; single use is this column, the issue time of the challenge a device
 * last enrolled with. An enrollment must bring a challenge issued after it and moves it forward in
 * the same UPDATE that enrolls, so a replayed (or older) challenge is refused. See ../schema.ts.
 */
export const enrollChallengeAtMigration = {
  id: '0115_enroll_challenge_at',
  sql: `ALTER TABLE devices ADD COLUMN enroll_challenge_at INTEGER;`,
};
