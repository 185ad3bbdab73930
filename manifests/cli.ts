// Placeholder; the manifests work replaces it.
export async function manifestMain(_argv: string[]): Promise<number> { return 1; }
export async function keygenMain(_argv: string[]): Promise<number> { return 1; }
