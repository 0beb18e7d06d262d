using PromHa.Node.Http;
using PromHa.Node.Security;
using PromHa.Node.Settings;

namespace PromHa.Tests.Settings;

/// <summary>The admin token and TLS settings: where they come from, and mistakes that stop a node with a clear message.</summary>
public sealed class SecuritySettingsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("promha-security").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private string Yaml(string extra = "")
    {
        var path = Path.Combine(_dir, "promha.yml");
        File.WriteAllText(path, $"""
            node:
              name: prom-a
            cluster:
              seeds: [127.0.0.1:4053]
            dataDir: {_dir}/data
            {extra}
            """);
        return path;
    }

    [Fact]
    public void The_token_comes_from_the_file_then_the_environment_then_the_systemd_credential_and_is_compared_whole()
    {
        var file = Path.Combine(_dir, "token");
        AdminToken.WriteFile(file, "from-the-file-0123456789");
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        var env = new Dictionary<string, string?> { ["PROMHA_TOKEN"] = "from-the-environment-0123" };

        var s = SettingsLoader.Load(Yaml($"http:\n  tokenFile: {file}"), [], env);
        var token = AdminToken.Load(s, env)!;
        Assert.True(token.Matches("from-the-file-0123456789"));
        Assert.False(token.Matches("from-the-environment-0123"));
        Assert.False(token.Matches("from-the-file-012345678"));
        Assert.False(token.Matches(null));

        s = SettingsLoader.Load(Yaml(), [], env); // PROMHA_TOKEN is not a settings key
        Assert.True(AdminToken.Load(s, env)!.Matches("from-the-environment-0123"));

        var creds = Directory.CreateDirectory(Path.Combine(_dir, "creds")).FullName;
        AdminToken.WriteFile(Path.Combine(creds, "promha-token"), "from-systemd-credentials-01");
        var systemd = new Dictionary<string, string?> { ["CREDENTIALS_DIRECTORY"] = creds };
        Assert.True(AdminToken.Load(s, systemd)!.Matches("from-systemd-credentials-01"));
        Assert.Null(AdminToken.Load(s, new Dictionary<string, string?>()));
    }

    [Fact]
    public void A_short_or_unreadable_token_stops_the_node_naming_where_it_came_from()
    {
        var file = Path.Combine(_dir, "short");
        AdminToken.WriteFile(file, "abc");
        var s = SettingsLoader.Load(Yaml($"http:\n  tokenFile: {file}"), [], new Dictionary<string, string?>());
        var e = Assert.Throws<SettingsException>(() => AdminToken.Load(s, new Dictionary<string, string?>()));
        Assert.Contains(file, e.Message);
        Assert.Contains("at least 16", e.Message);

        s = SettingsLoader.Load(Yaml($"http:\n  tokenFile: {_dir}/missing"), [], new Dictionary<string, string?>());
        e = Assert.Throws<SettingsException>(() => AdminToken.Load(s, new Dictionary<string, string?>()));
        Assert.Contains("http.tokenFile", e.Message);
    }

    [Fact]
    public void Tls_needs_all_three_files_and_a_certificate_of_the_named_CA()
    {
        var e = Assert.Throws<SettingsException>(() => SettingsLoader.Load(Yaml($"tls:\n  certFile: {_dir}/x.crt"), [], new Dictionary<string, string?>()));
        Assert.Contains("tls.caFile", e.Message);

        var ca = ClusterCerts.CreateCa(Path.Combine(_dir, "tls"), "test CA");
        ClusterCerts.CreateNode(ca, Path.Combine(_dir, "tls"), "prom-a");
        var other = ClusterCerts.CreateCa(Path.Combine(_dir, "other"), "test CA"); // same name, another key
        ClusterCerts.CreateNode(other, Path.Combine(_dir, "other"), "prom-a");

        var good = SettingsLoader.Load(Yaml($"tls:\n  caFile: {_dir}/tls/ca.crt\n  certFile: {_dir}/tls/prom-a.crt\n  keyFile: {_dir}/tls/prom-a.key"),
            [], new Dictionary<string, string?>());
        var tls = NodeTls.Load(good.Tls)!;
        Assert.True(tls.AcceptsPeer(tls.Certificate, out _));
        Assert.False(tls.AcceptsPeer(System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(
            $"{_dir}/other/prom-a.crt", $"{_dir}/other/prom-a.key"), out var why));
        Assert.NotEmpty(why);
        Assert.False(tls.AcceptsPeer(null, out _));

        var foreign = SettingsLoader.Load(Yaml($"tls:\n  caFile: {_dir}/tls/ca.crt\n  certFile: {_dir}/other/prom-a.crt\n  keyFile: {_dir}/other/prom-a.key"),
            [], new Dictionary<string, string?>());
        e = Assert.Throws<SettingsException>(() => NodeTls.Load(foreign.Tls));
        Assert.Contains("not a node certificate of the CA", e.Message);

        var mismatched = SettingsLoader.Load(Yaml($"tls:\n  caFile: {_dir}/tls/ca.crt\n  certFile: {_dir}/tls/prom-a.crt\n  keyFile: {_dir}/other/prom-a.key"),
            [], new Dictionary<string, string?>());
        e = Assert.Throws<SettingsException>(() => NodeTls.Load(mismatched.Tls));
        Assert.Contains("cannot load", e.Message);

        e = Assert.Throws<SettingsException>(() => SettingsLoader.Load(Yaml("tls:\n  http: true"), [], new Dictionary<string, string?>()));
        Assert.Contains("tls.http", e.Message);
    }
}
