using System.Net;
using System.Net.Sockets;

namespace PromHa.Lab;

/// <summary>
/// Loopback ports for the lab's servers, claimed machine-wide until this process exits, so that the
/// unit and end-to-end assemblies (two processes) running side by side never hand out the same one.
/// A port asked of the kernel (bind to 0) and released is free again for anybody: another process's
/// bind(0) may be given it before our server binds it, and each process's own memory of what it handed
/// out cannot see the other's. Here a port is taken only if this process holds its claim file's lock
/// (flock, dropped by the kernel when the process dies, however it dies) and it binds at the time.
/// The ports lie below the kernel's ephemeral range (32768-60999 on Debian), so an outgoing
/// connection's local port cannot take one between the claim and the server's bind either.
/// </summary>
public static class LoopbackPorts
{
    private const int First = 20000, Last = 32700;
    private static readonly string ClaimDir = Path.Combine(Path.GetTempPath(), "promha-ports");
    private static readonly List<FileStream> Claims = [];
    private static int _next = First + Random.Shared.Next(Last - First);

    /// <summary>
    /// <paramref name="count"/> ports nobody else on this machine holds; each handed out once per
    /// process, as its claim stays locked here (flock locks each open of the file on its own).
    /// </summary>
    public static int[] Claim(int count)
    {
        Directory.CreateDirectory(ClaimDir);
        var ports = new List<int>(count);
        lock (Claims)
        {
            for (var tried = 0; ports.Count < count; tried++)
            {
                if (tried > Last - First)
                    throw new InvalidOperationException($"no {count} free loopback port(s) left in {First}-{Last} (claims in {ClaimDir})");
                var port = _next;
                _next = _next >= Last ? First : _next + 1;
                if (!TryLock(port, out var claim)) continue;
                if (!Binds(port))
                {
                    claim.Dispose();
                    continue;
                }
                Claims.Add(claim);
                ports.Add(port);
            }
        }
        return ports.ToArray();
    }

    private static bool TryLock(int port, out FileStream claim)
    {
        claim = null!;
        try
        {
            // FileShare.None is an exclusive flock on Unix: a second process (or a second open here) fails.
            claim = new FileStream(Path.Combine(ClaimDir, port.ToString()), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            return true;
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    private static bool Binds(int port)
    {
        try
        {
            var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (SocketException) { return false; }
    }
}
