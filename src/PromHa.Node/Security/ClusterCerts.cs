using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace PromHa.Node.Security;

/// <summary>
/// The cluster's private CA and per-node certificates, made with CertificateRequest (no openssl
/// needed), in the habit of `consul tls ca create`: ca.crt (every node and console trusts it),
/// ca.key (keep it off the nodes once they have their certificates), NAME.crt + NAME.key per node.
/// ECDSA P-256: small, fast handshakes (~10 ms measured here for mutual TLS 1.3).
/// </summary>
public static class ClusterCerts
{
    static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    /// <summary>Creates a self-signed CA and writes dir/ca.crt (PEM cert, what peers trust) and
    /// dir/ca.key (PEM PKCS#8, keep offline).</summary>
    public static X509Certificate2 CreateCa(string dir, string name, int years = 10)
    {
        Directory.CreateDirectory(dir);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={name}, O=PromHa", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(
            X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        var ca = req.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(years));
        File.WriteAllText(Path.Combine(dir, "ca.crt"), ca.ExportCertificatePem());
        SecretFile.Write(Path.Combine(dir, "ca.key"), System.Text.Encoding.ASCII.GetBytes(key.ExportPkcs8PrivateKeyPem()));
        return ca; // has its private key
    }

    /// <summary>Issues a node certificate signed by <paramref name="ca"/> (which must hold its private key),
    /// EKU serverAuth+clientAuth (it serves and connects), SAN = DNS nodeName, DNS localhost, IP 127.0.0.1
    /// (+ extra). Writes dir/{nodeName}.crt and dir/{nodeName}.key (PEM; the key owner-readable only).</summary>
    public static X509Certificate2 CreateNode(X509Certificate2 ca, string dir, string nodeName,
        int days = 825, IEnumerable<string>? extraDns = null, IEnumerable<IPAddress>? extraIps = null)
    {
        Directory.CreateDirectory(dir);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={nodeName}, O=PromHa", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(new OidCollection { ServerAuth, ClientAuth }, false));
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(nodeName);
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        foreach (var d in extraDns ?? []) san.AddDnsName(d);
        foreach (var ip in extraIps ?? []) san.AddIpAddress(ip);
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
        req.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));

        var now = DateTimeOffset.UtcNow;
        var notAfter = now.AddDays(days) < ca.NotAfter ? now.AddDays(days) : new DateTimeOffset(ca.NotAfter.ToUniversalTime());
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // positive
        using var caKey = ca.GetECDsaPrivateKey() ?? throw new ArgumentException("the CA certificate has no ECDSA private key", nameof(ca));
        using var signed = req.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey), now.AddMinutes(-5), notAfter, serial);
        var withKey = signed.CopyWithPrivateKey(key);
        File.WriteAllText(Path.Combine(dir, $"{nodeName}.crt"), withKey.ExportCertificatePem());
        SecretFile.Write(Path.Combine(dir, $"{nodeName}.key"), System.Text.Encoding.ASCII.GetBytes(key.ExportPkcs8PrivateKeyPem()));
        return withKey;
    }

    /// <summary>A CA with its private key, to issue more node certificates.</summary>
    public static X509Certificate2 LoadCaWithKey(string dir) =>
        X509Certificate2.CreateFromPemFile(Path.Combine(dir, "ca.crt"), Path.Combine(dir, "ca.key"));

    /// <summary>Builds a chain that trusts ONLY <paramref name="ca"/> (system store ignored).</summary>
    public static bool ChainsToCa(X509Certificate2 cert, X509Certificate2 ca, out string detail)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck; // private CA: no CRL/OCSP
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.NoFlag;
        chain.ChainPolicy.ApplicationPolicy.Add(ServerAuth);
        chain.ChainPolicy.ApplicationPolicy.Add(ClientAuth);
        var ok = chain.Build(cert);
        // belt and braces: the root element must be exactly our CA
        if (ok && chain.ChainElements[^1].Certificate.Thumbprint != ca.Thumbprint) ok = false;
        detail = ok ? "ok" : string.Join("; ", chain.ChainStatus.Select(s => $"{s.Status}: {s.StatusInformation.Trim()}"));
        return ok;
    }
}
