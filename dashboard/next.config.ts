// The dashboard talks only to the gateway, through the same-origin proxy in app/api.
import type { NextConfig } from "next";

const config: NextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
};

export default config;
