export * from './model.js';
export * from './canonical.js';
export * from './image-ref.js';
export * from './keys.js';
export * from './deployment.js';
export * from './protocol.js';
