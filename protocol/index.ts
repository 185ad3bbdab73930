export * from './keys.js';
export * from './deployment.js';
export * from './protocol.js';
