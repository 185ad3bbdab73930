/**
 * The engine's answer when a container cannot start says neither which service nor, in plain
 * words, why: a published host port already taken reads "driver failed programming external
 * connectivity on endpoint berth-…: Bind for 0.0.0.0:1883 failed: port is already allocated".
 * The device reports this message to the operator, so it names the service and the port first
 * and keeps the engine's text after it.
 */

const PORT_TAKEN = [
  // Another container holds it (the engine's own port allocator).
  /Bind for ([\d.:[\]a-f]+:\d+) failed: port is already allocated/,
  // Another process on the host holds it (the userland proxy cannot listen).
  /listen (?:tcp|udp)[46]? ([\d.:[\]a-f]+:\d+): bind: address already in use/,
];

export function startErrorMessage(service: string, engineMessage: string): string {
  const raw = engineMessage.trim();
  for (const re of PORT_TAKEN) {
    const m = re.exec(raw);
    if (m) return `service ${service} cannot start: host port ${m[1]} is already taken by another container or process on this host (engine: ${raw})`;
  }
  return `service ${service} cannot start: ${raw}`;
}
