namespace PromHa.Messages.RemoteWrite;

/// <summary>
/// The master's remote-write gate tells every node, series by series, the newest sample the receiver
/// acknowledged (<see cref="Series"/> hashes of the labels, <see cref="SeriesMs"/> Unix ms; what
/// changed since the last message, at most a few thousand per message), every quarter second while
/// it forwards and once more (<see cref="Final"/>) when it stops. A standby's gate drops what that
/// covers and, promoted, sends of each series only what comes after.
/// </summary>
public sealed record RemoteWriteAcked(string Receiver, string Node, long Epoch, bool Final, ulong[] Series, long[] SeriesMs) : IPromHaMessage;
