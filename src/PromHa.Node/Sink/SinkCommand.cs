using System.CommandLine;

namespace PromHa.Node.Sink;

/// <summary>
/// `promha sink`: the demo's webhook receiver on its own, for the compose demos (a container that
/// stands in for the operators' chat/SMS forwarder). One line per notification on stdout and in
/// --log and on GET /, with the gate's headers (which node delivered it, under which epoch, and why); /metrics
/// serves promha_demo_trigger{name=...} for each --trigger, which the demos' DemoTrigger rule fires on.
/// </summary>
public static class SinkCommand
{
    public static Command Create()
    {
        var port = new Option<int>("--port") { Description = "Listen on this port on every address", DefaultValueFactory = _ => 9095 };
        var log = new Option<string?>("--log") { Description = "Also append each line to this file" };
        var triggers = new Option<string[]>("--trigger")
        {
            Description = "Serve promha_demo_trigger{name=NAME} 1 on /metrics (repeatable): the demos' DemoTrigger alert fires for it",
            AllowMultipleArgumentsPerToken = true,
        };
        var sink = new Command("sink", "A webhook receiver that prints every notification it gets (the compose demos' stand-in for a chat forwarder)")
            { port, log, triggers };
        sink.SetAction(async (p, ct) =>
        {
            using var receiver = new WebhookSink(p.GetValue(port), p.GetValue(log), everyAddress: true) { Echo = true };
            foreach (var t in p.GetValue(triggers) ?? []) receiver.Triggers[t] = 1;
            System.Console.WriteLine($"promha sink: webhooks on :{receiver.Port}/webhook, promha_demo_trigger on :{receiver.Port}/metrics");
            try { await Task.Delay(Timeout.Infinite, ct); }
            catch (OperationCanceledException) { }
            return 0;
        });
        return sink;
    }
}
