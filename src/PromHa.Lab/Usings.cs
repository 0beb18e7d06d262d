// The lab drives the daemon's own types (settings, API client, TLS material, supervision).
global using PromHa.Node;
global using PromHa.Node.Console;
global using PromHa.Node.Http;
global using PromHa.Node.Security;
global using PromHa.Node.Settings;
global using PromHa.Node.Sink;
global using PromHa.Node.Supervision;
