import { EventEmitter } from 'node:events';
import type { DeviceReport, ReleasePhase } from '../protocol/device.js';

/** What happens to devices, for whoever drives rollouts (campaigns) and metrics. */
export interface ControlPlaneEvents {
  report: { deviceId: string; report: DeviceReport; previousPhase: ReleasePhase | null };
  'device-enrolled': { deviceId: string };
  'device-labels-changed': { deviceId: string };
  'device-revoked': { deviceId: string };
  /** A campaign was created (its members joined): layer deltas are prepared for it. */
  'campaign-created': { campaignId: string };
  /** A signing key was made or revoked: other processes reload theirs (cluster-relay.ts). */
  'signing-keys-changed': { kid: string };
}

/** A thin typed face over EventEmitter; listeners run after the change is committed. */
export class TypedEmitter {
  private readonly inner = new EventEmitter();
  constructor() {
    this.inner.setMaxListeners(100);
  }
  on<K extends keyof ControlPlaneEvents>(event: K, listener: (payload: ControlPlaneEvents[K]) => void): () => void {
    this.inner.on(event, listener);
    return () => this.inner.off(event, listener);
  }
  emit<K extends keyof ControlPlaneEvents>(event: K, payload: ControlPlaneEvents[K]): void {
    this.inner.emit(event, payload);
  }
}
