using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace PromHa.Node.Security;

/// <summary>Trust in exactly one CA: the cluster's, never the system's roots.</summary>
public static class ClusterCa
{
    /// <summary>
    /// True when <paramref name="cert"/> chains to <paramref name="ca"/> and SslStream found no
    /// other fault than the CA being unknown to the system (a private CA always is).
    /// </summary>
    public static bool Verify(X509Certificate2 ca, X509Certificate2 cert, SslPolicyErrors errors)
    {
        if ((errors & (SslPolicyErrors.RemoteCertificateNotAvailable | SslPolicyErrors.RemoteCertificateNameMismatch)) != 0) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(cert);
    }
}
