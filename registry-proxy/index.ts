// Entry point placeholder; the component's own work replaces it.
export async function main(_argv: string[]): Promise<number> {
  console.error('this component has not landed yet');
  return 1;
}
