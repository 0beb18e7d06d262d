using System.CommandLine;
using System.Net;
using PromHa.Node.Http;
using PromHa.Node.Security;

namespace PromHa.Node.Console;

/// <summary>
/// `promha certs init|node` (a cluster CA and node certificates, the habit of `consul tls ca
/// create`) and `promha token new` (an admin token file).
/// </summary>
public static class SecurityCommands
{
    public static IEnumerable<Command> Create()
    {
        var dir = new Option<string>("--dir") { Description = "Where the CA and certificates go", DefaultValueFactory = _ => "promha-tls" };
        var nodes = new Option<string[]>("--node")
        {
            Description = "A node to issue a certificate for: NAME or NAME=ADDR[,ADDR...] (its cluster host names and IPs; repeatable)",
            AllowMultipleArgumentsPerToken = true,
        };
        var init = new Command("init", "Create a cluster CA (ca.crt, ca.key) and a certificate for each --node") { dir, nodes };
        init.SetAction(p =>
        {
            var target = Path.GetFullPath(p.GetValue(dir)!);
            if (File.Exists(Path.Combine(target, "ca.key")))
            {
                System.Console.Error.WriteLine($"promha: {target}/ca.key exists; a second CA would split the cluster. Use `promha certs node` to add a node.");
                return 1;
            }
            var ca = ClusterCerts.CreateCa(target, "PromHa cluster CA");
            System.Console.WriteLine($"CA: {target}/ca.crt (give it to every node and console), {target}/ca.key (keep it safe, off the nodes)");
            return Issue(ca, target, p.GetValue(nodes) ?? []);
        });

        var node = new Command("node", "Issue a certificate for more nodes with an existing CA") { dir, nodes };
        node.SetAction(p =>
        {
            var target = Path.GetFullPath(p.GetValue(dir)!);
            System.Security.Cryptography.X509Certificates.X509Certificate2 ca;
            try
            {
                ca = ClusterCerts.LoadCaWithKey(target);
            }
            catch (Exception e) when (e is IOException or System.Security.Cryptography.CryptographicException)
            {
                System.Console.Error.WriteLine($"promha: cannot load the CA from {target} (ca.crt, ca.key): {e.Message}");
                return 1;
            }
            return Issue(ca, target, p.GetValue(nodes) ?? []);
        });
        var certs = new Command("certs", "TLS between nodes: a cluster CA and node certificates") { init, node };

        var file = new Option<string>("--out") { Description = "The token file to write (owner-readable only)", DefaultValueFactory = _ => "promha.token" };
        var tokenNew = new Command("new", "Write a new random admin token to a file") { file };
        tokenNew.SetAction(p =>
        {
            var path = Path.GetFullPath(p.GetValue(file)!);
            AdminToken.WriteFile(path, AdminToken.Generate());
            System.Console.WriteLine($"admin token written to {path} (mode 0600). Nodes: http.tokenFile: {path}; console: export PROMHA_TOKEN_FILE={path}");
            return 0;
        });
        var token = new Command("token", "The admin token the API asks for on changes") { tokenNew };
        return [certs, token];
    }

    private static int Issue(System.Security.Cryptography.X509Certificates.X509Certificate2 ca, string dir, string[] specs)
    {
        foreach (var spec in specs)
        {
            var eq = spec.IndexOf('=');
            var name = eq < 0 ? spec : spec[..eq];
            var addrs = eq < 0 ? [] : spec[(eq + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (name.Length == 0 || name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
            {
                System.Console.Error.WriteLine($"promha: --node {spec}: a node name has letters, digits, '-', '_' and '.'");
                return 64;
            }
            var ips = addrs.Where(a => IPAddress.TryParse(a, out _)).Select(IPAddress.Parse).ToList();
            var dns = addrs.Where(a => !IPAddress.TryParse(a, out _)).ToList();
            var cert = ClusterCerts.CreateNode(ca, dir, name, extraDns: dns, extraIps: ips);
            System.Console.WriteLine($"node {name}: {dir}/{name}.crt, {dir}/{name}.key (valid until {cert.NotAfter:yyyy-MM-dd})");
        }
        if (specs.Length > 0)
            System.Console.WriteLine("""
                On each node (promha.yml):
                  tls:
                    caFile: /etc/promha/tls/ca.crt
                    certFile: /etc/promha/tls/NAME.crt
                    keyFile: /etc/promha/tls/NAME.key
                """);
        return 0;
    }
}
