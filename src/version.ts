/** celeriac's version, as the CLI and worker events report it (kept equal to package.json's by a test). */
export const VERSION = '0.1.0';
