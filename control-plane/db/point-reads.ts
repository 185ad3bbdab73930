import type { Client } from '@libsql/client';
import Database from 'libsql';

/**
 * The reads every device request makes (issue 17): the device row behind a token (revocation and
 * epoch, checked on every request), the desired sequence a poll compares with its ETag, and the
 * row an enrollment checks its proof against, and the desired row a woken poll's document is signed
 * from. Through
 * @libsql/client each read prepares its statement again, asks the driver for the column names
 * twice and builds a row object with a property per column: about 65 µs of CPU a read, where the
 * lookup itself takes a few. On an embedded `file:` database they are prepared once here, on a
 * connection of their own (the same native driver the client wraps), and read as arrays: about
 * 10 µs for both. WAL lets this connection read while another writes; each read is its own
 * transaction (the statement is reset after its row), so it sees every commit made before it,
 * from this process or another. A server database (libsql://, http(s)://) and an in-memory one
 * (one connection only) read through the client, as before.
 */
export interface DeviceRow {
  id: string;
  serial: string;
  status: string;
  tokenEpoch: number;
}

/** The device row an enrollment checks (device-api/enrollment.ts), by serial. */
export interface EnrollingDevice {
  id: string;
  serial: string;
  publicKey: string;
  labels: string;
  status: string;
  tokenEpoch: number;
  encryptionKey: string | null;
  enrollChallengeAt: number | null;
}

/** A device's desired row as its signed document needs it (devices/desired.ts): the rest is the manifest's. */
export interface DesiredDocumentRow {
  sequence: number;
  campaignId: string | null;
  /** JSON DeviceConfig, or null. */
  config: string | null;
  manifestId: string;
}

export interface PointReads {
  device(id: string): Promise<DeviceRow | undefined>;
  /** Every enrollment reads this before its write (the key to verify its proof with). */
  enrollingDevice(serial: string): Promise<EnrollingDevice | undefined>;
  desiredSequence(deviceId: string): Promise<number | null>;
  /** device() and desiredSequence() in one statement, one read transaction: what a poll reads. */
  deviceAndSequence(id: string): Promise<{ device: DeviceRow | undefined; sequence: number | null }>;
  /** What a woken long poll signs (every device of a campaign's wave at once). */
  desiredDocument(deviceId: string): Promise<DesiredDocumentRow | undefined>;
  close(): void;
}

const DEVICE_SQL = 'SELECT id, serial, status, token_epoch FROM devices WHERE id = ?';
const SEQUENCE_SQL = 'SELECT sequence FROM desired WHERE device_id = ?';
const DEVICE_SEQUENCE_SQL = 'SELECT id, serial, status, token_epoch, (SELECT sequence FROM desired WHERE device_id = devices.id) AS sequence FROM devices WHERE id = ?';

function deviceAndSequenceOf(r: ArrayLike<unknown> | undefined): { device: DeviceRow | undefined; sequence: number | null } {
  return { device: deviceOf(r), sequence: r && r[4] != null ? Number(r[4]) : null };
}
const DOCUMENT_SQL = 'SELECT sequence, campaign_id, config, manifest_id FROM desired WHERE device_id = ?';

function documentRowOf(r: ArrayLike<unknown> | undefined): DesiredDocumentRow | undefined {
  return r ? { sequence: Number(r[0]), campaignId: r[1] == null ? null : String(r[1]), config: r[2] == null ? null : String(r[2]), manifestId: String(r[3]) } : undefined;
}

function deviceOf(r: ArrayLike<unknown> | undefined): DeviceRow | undefined {
  return r ? { id: String(r[0]), serial: String(r[1]), status: String(r[2]), tokenEpoch: Number(r[3]) } : undefined;
}

export const ENROLLING_COLUMNS = 'id, serial, public_key, labels, status, token_epoch, encryption_key, enroll_challenge_at';
const ENROLLING_SQL = `SELECT ${ENROLLING_COLUMNS} FROM devices WHERE serial = ?`;

/** A row of ENROLLING_COLUMNS, in that order. */
export function enrollingDeviceOf(r: ArrayLike<unknown> | undefined): EnrollingDevice | undefined {
  if (!r) return undefined;
  const at = r[7];
  return { id: String(r[0]), serial: String(r[1]), publicKey: String(r[2]), labels: String(r[3]), status: String(r[4]), tokenEpoch: Number(r[5]), encryptionKey: r[6] == null ? null : String(r[6]), enrollChallengeAt: at == null ? null : Number(at) };
}

/** The same reads through the client: what any URL supports. */
export function clientPointReads(client: Client): PointReads {
  return {
    async device(id) {
      const rs = await client.execute({ sql: DEVICE_SQL, args: [id] });
      const r = rs.rows[0];
      return r ? deviceOf([r.id, r.serial, r.status, r.token_epoch]) : undefined;
    },
    async enrollingDevice(serial) {
      const rs = await client.execute({ sql: ENROLLING_SQL, args: [serial] });
      const r = rs.rows[0];
      return r ? enrollingDeviceOf([r.id, r.serial, r.public_key, r.labels, r.status, r.token_epoch, r.encryption_key, r.enroll_challenge_at]) : undefined;
    },
    async desiredSequence(deviceId) {
      const rs = await client.execute({ sql: SEQUENCE_SQL, args: [deviceId] });
      return rs.rows.length ? Number(rs.rows[0].sequence) : null;
    },
    async deviceAndSequence(id) {
      const rs = await client.execute({ sql: DEVICE_SEQUENCE_SQL, args: [id] });
      const r = rs.rows[0];
      return deviceAndSequenceOf(r ? [r.id, r.serial, r.status, r.token_epoch, r.sequence] : undefined);
    },
    async desiredDocument(deviceId) {
      const rs = await client.execute({ sql: DOCUMENT_SQL, args: [deviceId] });
      const r = rs.rows[0];
      return r ? documentRowOf([r.sequence, r.campaign_id, r.config, r.manifest_id]) : undefined;
    },
    close() {},
  };
}

/** The path of an embedded database file, or null (a server, or in memory). */
export function embeddedFileOf(url: string): string | null {
  if (!url.startsWith('file:')) return null;
  let p = url.slice('file:'.length).split('?')[0];
  if (p.startsWith('//')) p = p.slice(p.indexOf('/', 2));
  if (p === '' || p.includes(':memory:') || /[?&]mode=memory/.test(url)) return null;
  return decodeURIComponent(p);
}

/**
 * Prepared statements on a connection of their own for an embedded file (opened after the client
 * set WAL on it, so the file exists); the client's reads otherwise. `busyTimeoutMs` as the client's.
 */
export function openPointReads(url: string, client: Client, busyTimeoutMs = 5000): PointReads {
  const file = embeddedFileOf(url);
  if (!file) return clientPointReads(client);
  const conn = new Database(file, { timeout: busyTimeoutMs } as ConstructorParameters<typeof Database>[1]);
  const device = conn.prepare(DEVICE_SQL).raw(true);
  const sequence = conn.prepare(SEQUENCE_SQL).raw(true);
  const enrolling = conn.prepare(ENROLLING_SQL).raw(true);
  const document = conn.prepare(DOCUMENT_SQL).raw(true);
  const deviceSequence = conn.prepare(DEVICE_SEQUENCE_SQL).raw(true);
  return {
    device: async (id) => deviceOf(device.get(id) as unknown[] | undefined),
    enrollingDevice: async (serial) => enrollingDeviceOf(enrolling.get(serial) as unknown[] | undefined),
    desiredSequence: async (deviceId) => {
      const r = sequence.get(deviceId) as unknown[] | undefined;
      return r ? Number(r[0]) : null;
    },
    deviceAndSequence: async (id) => deviceAndSequenceOf(deviceSequence.get(id) as unknown[] | undefined),
    desiredDocument: async (deviceId) => documentRowOf(document.get(deviceId) as unknown[] | undefined),
    close: () => conn.close(),
  };
}
