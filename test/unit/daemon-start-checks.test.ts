import { describe, expect, it } from 'vitest';
import { platformMismatch } from '../../edge-daemon/reconcile/platform.js';
import { startErrorMessage } from '../../edge-daemon/reconcile/start-error.js';

describe('a service platform against the image the gateway got', () => {
  it('no platform asked: anything fits', () => {
    expect(platformMismatch('a', undefined, { Os: 'linux', Architecture: 'arm' }, 'img')).toBeNull();
  });
  it('os and arch must match; a variant only when the manifest names one', () => {
    expect(platformMismatch('a', 'linux/amd64', { Os: 'linux', Architecture: 'amd64' }, 'img')).toBeNull();
    expect(platformMismatch('a', 'linux/arm64', { Os: 'linux', Architecture: 'arm64', Variant: 'v8' }, 'img')).toBeNull();
    expect(platformMismatch('a', 'linux/arm/v7', { Os: 'linux', Architecture: 'arm', Variant: 'v7' }, 'img')).toBeNull();
    expect(platformMismatch('a', 'linux/arm/v7', { Os: 'linux', Architecture: 'arm', Variant: 'v6' }, 'img')).toBe(
      'service a asks for platform linux/arm/v7, but its image img is linux/arm/v6 (the gateway picks its own platform from a multi-platform image)',
    );
    expect(platformMismatch('flows', 'linux/arm64', { Os: 'linux', Architecture: 'amd64' }, 'registry.example.com/x@sha256:1')).toBe(
      'service flows asks for platform linux/arm64, but its image registry.example.com/x@sha256:1 is linux/amd64 (the gateway picks its own platform from a multi-platform image)',
    );
    expect(platformMismatch('a', 'windows/amd64', { Os: 'linux', Architecture: 'amd64' }, 'img')).toMatch(/is linux\/amd64/);
  });
});

describe('a container that cannot start, as the device reports it', () => {
  it('a host port taken by another container names the service and the port', () => {
    const raw = 'driver failed programming external connectivity on endpoint berth-x-mosquitto-1 (ab12): Bind for 127.0.0.1:1883 failed: port is already allocated ';
    expect(startErrorMessage('mosquitto', raw)).toBe(
      'service mosquitto cannot start: host port 127.0.0.1:1883 is already taken by another container or process on this host (engine: driver failed programming external connectivity on endpoint berth-x-mosquitto-1 (ab12): Bind for 127.0.0.1:1883 failed: port is already allocated)',
    );
  });
  it('a host port taken by a host process (the userland proxy cannot listen)', () => {
    const raw = 'driver failed programming external connectivity on endpoint e: Error starting userland proxy: listen tcp4 0.0.0.0:8123: bind: address already in use';
    expect(startErrorMessage('hub', raw)).toMatch(/^service hub cannot start: host port 0\.0\.0\.0:8123 is already taken by another container or process on this host \(engine: /);
  });
  it('anything else keeps the engine\'s words, with the service named', () => {
    expect(startErrorMessage('a', 'OCI runtime create failed: exec format error')).toBe('service a cannot start: OCI runtime create failed: exec format error');
  });
});
