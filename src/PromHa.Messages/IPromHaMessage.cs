namespace PromHa.Messages;

/// <summary>
/// Marker for every message that may cross the wire. hocon/serialization.hocon binds it to
/// <see cref="Serialization.PromHaSerializer"/>, so nothing falls back to Akka's default JSON.
/// </summary>
public interface IPromHaMessage;

/// <summary>Messages that belong to one leadership epoch; anything from an older epoch is dropped.</summary>
public interface IEpochMessage : IPromHaMessage
{
    long Epoch { get; }
}
