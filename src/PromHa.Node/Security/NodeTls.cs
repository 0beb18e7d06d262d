using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Akka.Event;
using PromHa.Node.Settings;

namespace PromHa.Node.Security;

/// <summary>
/// A node's TLS material, loaded and checked before anything starts: the cluster CA, and this
/// node's certificate with its key, which must be signed by that CA and valid now. A mistake here
/// stops the node with a message naming the file, rather than a cluster that silently never forms.
/// </summary>
public sealed class NodeTls
{
    public X509Certificate2 Ca { get; }
    public X509Certificate2 Certificate { get; }

    private NodeTls(X509Certificate2 ca, X509Certificate2 certificate)
    {
        Ca = ca;
        Certificate = certificate;
    }

    public static NodeTls? Load(TlsSection t)
    {
        if (!t.Enabled) return null;
        X509Certificate2 ca, cert;
        try
        {
            ca = X509CertificateLoader.LoadCertificateFromFile(t.CaFile);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new SettingsException($"tls.caFile: cannot read {t.CaFile}: {e.Message}");
        }
        try
        {
            cert = X509Certificate2.CreateFromPemFile(t.CertFile, t.KeyFile);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new SettingsException($"tls.certFile/tls.keyFile: cannot load {t.CertFile} with {t.KeyFile}: {e.Message}");
        }
        if (DateTime.Now > cert.NotAfter || DateTime.Now < cert.NotBefore)
            throw new SettingsException($"tls.certFile: {t.CertFile} is valid from {cert.NotBefore:u} to {cert.NotAfter:u}, not now");
        if (!ClusterCerts.ChainsToCa(cert, ca, out var why))
            throw new SettingsException($"tls.certFile: {t.CertFile} is not a node certificate of the CA in {t.CaFile}: {why}");
        // SslStream on Linux wants a key it can export to OpenSSL; a PEM-loaded key is ephemeral, which it accepts.
        return new NodeTls(ca, cert);
    }

    /// <summary>Akka's remoting validator: the peer's certificate must chain to the cluster CA, whatever the system trusts.</summary>
    public bool AcceptsPeer(X509Certificate2? peer, out string why)
    {
        if (peer is null)
        {
            why = "it sent no certificate";
            return false;
        }
        return ClusterCerts.ChainsToCa(peer, Ca, out why);
    }

    /// <summary>
    /// Remoting over TLS, both sides presenting a certificate. The validator replaces Akka's check
    /// against the system's roots (which never know a private CA) with a chain to the cluster CA
    /// only; a certificate of another CA with the same name is refused too. Runs on an I/O thread:
    /// no network, no revocation lookups.
    /// </summary>
    public Akka.Remote.Hosting.SslOptions RemotingOptions() => new()
    {
        X509Certificate = Certificate,
        RequireMutualAuthentication = true,
        ValidateCertificateHostname = false, // node certificates name the node; peers are reached by address
        CustomValidator = (peer, _, remote, _, log) =>
        {
            if (AcceptsPeer(peer, out var why)) return true;
            log.Warning("Refused a TLS peer {0} ({1}): not signed by the cluster CA: {2}", remote, peer?.Subject ?? "no certificate", why);
            return false;
        },
    };
}
