// The same-origin proxy to the gateway: the browser never talks to another origin, so the
// gateway's HTTP-only session cookie is the dashboard's. Bodies and server-sent events stream
// through unchanged.
const GATEWAY = process.env.GATEWAY_URL ?? "http://127.0.0.1:3001";
const FORWARDED = ["content-type", "cookie", "authorization", "accept", "last-event-id"];
const RETURNED = ["content-type", "set-cookie", "cache-control"];

async function proxy(request: Request, context: { params: Promise<{ path: string[] }> }): Promise<Response> {
  const { path } = await context.params;
  const url = new URL(request.url);
  const target = `${GATEWAY}/${path.map(encodeURIComponent).join("/")}${url.search}`;
  const headers = new Headers();
  for (const name of FORWARDED) {
    const value = request.headers.get(name);
    if (value) headers.set(name, value);
  }
  const hasBody = !["GET", "HEAD"].includes(request.method);
  let upstream: Response;
  try {
    upstream = await fetch(target, {
      method: request.method,
      headers,
      body: hasBody ? await request.arrayBuffer() : undefined,
      cache: "no-store",
      redirect: "manual",
    });
  } catch {
    return Response.json({ error: `the gateway at ${GATEWAY} does not answer` }, { status: 502 });
  }
  const out = new Headers();
  for (const name of RETURNED) {
    const value = upstream.headers.get(name);
    if (value) out.set(name, value);
  }
  if (out.get("content-type")?.startsWith("text/event-stream")) {
    out.set("cache-control", "no-cache, no-transform");
    out.set("x-accel-buffering", "no");
  }
  return new Response(upstream.body, { status: upstream.status, headers: out });
}

export const dynamic = "force-dynamic";
export { proxy as GET, proxy as POST, proxy as PUT, proxy as DELETE };
