// ESLint 9 flat config: Next.js's core-web-vitals and TypeScript rules.
import next from "eslint-config-next/core-web-vitals";
import typescript from "eslint-config-next/typescript";

const config = [
  ...next,
  ...typescript,
  { ignores: [".next/**", "node_modules/**", "e2e/screenshots/**", "next-env.d.ts", "lib/openapi.d.ts"] },
];

export default config;
