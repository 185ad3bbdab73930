/**
 * A service's Compose `platform` (`os/arch[/variant]`) is a promise about its image: the gateway
 * checks the image it got (the download channel picks the gateway's own platform from an index)
 * before creating the container, so a stack published for another machine fails before anything
 * running is stopped, with both platforms named, instead of crash-looping with "exec format error".
 */

export interface ImagePlatform {
  Os?: string;
  Architecture?: string;
  Variant?: string;
}

/** Why the image does not fit the service's platform, or null when it does (or none is asked). */
export function platformMismatch(service: string, wanted: string | undefined, image: ImagePlatform, imageRef: string): string | null {
  if (!wanted) return null;
  const [os, arch, variant] = wanted.split('/');
  const have = [image.Os ?? 'linux', image.Architecture ?? '?', ...(image.Variant ? [image.Variant] : [])].join('/');
  // A variant is only compared when the manifest names one (linux/arm64 fits an arm64 image of any variant).
  const fits = (image.Os ?? 'linux') === os && image.Architecture === arch && (!variant || image.Variant === variant);
  return fits ? null : `service ${service} asks for platform ${wanted}, but its image ${imageRef} is ${have} (the gateway picks its own platform from a multi-platform image)`;
}
