/** What `nano-gateway init` writes. */

export const STARTER_CONFIG = `# nano-gateway config. Every key and its default: see the README's config reference.
[gateway]
listen = "127.0.0.1:8080"

[apps.hello]
hosts = ["hello.localhost", "localhost", "127.0.0.1"]
entry = "apps/hello/server.js"
health_path = "/health"
`;

// A dynamic import works whether the surrounding package is CommonJS or ESM.
export const STARTER_APP = `// A minimal app for nano-gateway: listen on process.env.PORT, answer /health.
import('node:http').then(({ createServer }) => {
  const server = createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(\`Hello from \${process.env.NANO_APP} (pid \${process.pid})\\n\`);
  });
  server.listen(Number(process.env.PORT), process.env.HOST, () => {
    console.log(\`listening on \${process.env.HOST}:\${process.env.PORT}\`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
});
`;
