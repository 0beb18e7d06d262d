namespace PromHa.Messages.RemoteWrite;

/// <summary>
/// The master's remote-write gate tells every node how far the receiver has acknowledged its
/// samples (Unix ms of the newest sample in an acknowledged request), every quarter second while it
/// forwards and once more (<see cref="Final"/>) when it stops. A standby's gate drops what is covered
/// and, promoted, sends only samples after the newest mark it heard.
/// </summary>
public sealed record RemoteWriteAcked(string Receiver, string Node, long Epoch, long AckedThroughMs, bool Final) : IPromHaMessage;
