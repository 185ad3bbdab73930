/**
 * The parts of the Docker Engine API's answers the daemon reads (the engine sends more; the rest
 * is ignored). Field names are the API's own.
 */

export type Labels = Record<string, string>;

/** GET /containers/json */
export interface ContainerSummary {
  Id: string;
  Names?: string[];
  Labels: Labels;
  State: string;
  Status?: string;
  Created: number;
}

/** GET /containers/{id}/json */
export interface ContainerInspect {
  Id: string;
  Image: string;
  RestartCount: number;
  Config: { Image: string; Labels?: Labels; Tty: boolean };
  State: {
    Status: string;
    Running: boolean;
    Restarting: boolean;
    ExitCode: number;
    Error?: string;
    FinishedAt?: string;
    Health?: { Status: string; Log?: { ExitCode: number; Output: string }[] };
  };
  HostConfig: { RestartPolicy?: { Name?: string } };
  NetworkSettings: { Networks?: Record<string, unknown> };
}

/** GET /images/json */
export interface ImageSummary {
  Id: string;
  RepoTags?: string[] | null;
  RepoDigests?: string[] | null;
}

/** GET /images/{name}/json */
export interface ImageInspect {
  Id: string;
  RepoTags?: string[];
  RepoDigests?: string[];
  Os?: string;
  Architecture?: string;
  Variant?: string;
  RootFS?: { Layers?: string[] };
}

/** GET /volumes */
export interface VolumeList {
  Volumes?: { Name: string; Labels?: Labels | null }[] | null;
}

/** GET /networks */
export interface NetworkSummary {
  Name: string;
  Id?: string;
  Labels?: Labels;
}

/** GET /networks/{id} */
export interface NetworkInspect {
  Name: string;
  Containers?: Record<string, unknown>;
}

/** Filters as the API takes them: each key a list of values. */
export type Filters = Record<string, string[]>;

/** GET /containers/{id}/logs */
export interface LogOptions {
  stdout?: boolean;
  stderr?: boolean;
  tail?: number;
  /** Unix seconds. */
  since?: number;
}
