// SPDX-License-Identifier: MIT
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Linq;
using Microsoft.Extensions.Logging;
using NUnit.Framework;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>Logging through ILoggerFactory and the CustomAutograd meter.</summary>
[TestFixture]
[NonParallelizable]
public sealed class DiagnosticsTests
{
    [TearDown]
    public void ResetLogging()
    {
        AutogradDiagnostics.LoggerFactory = null;
        AutogradDiagnostics.TraceCalls = false;
    }

    [Test]
    public void Logging_BackwardFails_ErrorWithOriginalExceptionAndStack()
    {
        var sink = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(b => b.AddProvider(sink).SetMinimumLevel(LogLevel.Debug));
        AutogradDiagnostics.LoggerFactory = factory;
        var thrown = new InvalidOperationException("logged failure");
        UnaryFunction f = AutogradFunction.Create("LoggedFailure", (ctx, x) => x * 2, (ctx, g) => throw thrown);

        using (NewDisposeScope())
            Assert.Catch(() => f.Apply(torch.ones(2, requires_grad: true)).sum().backward());

        CapturedLog entry = sink.Entries.Single(e => e.Level == LogLevel.Error);
        Assert.That(entry.Message, Does.Contain("LoggedFailure"));
        Assert.That(entry.Exception, Is.SameAs(thrown));
        Assert.That(entry.Exception!.StackTrace, Is.Not.Null.And.Not.Empty);
        Assert.That(sink.Entries.Any(e => e.Level == LogLevel.Debug && e.Message.Contains("'LoggedFailure' created")), Is.True);
    }

    [Test]
    public void Logging_TraceEnabledAndTraceCalls_ApplyAndBackwardTracedWithShapes()
    {
        var sink = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(b => b.AddProvider(sink).SetMinimumLevel(LogLevel.Trace));
        AutogradDiagnostics.LoggerFactory = factory;
        AutogradDiagnostics.TraceCalls = true;

        using (NewDisposeScope())
            TestUtil.Relu.Apply(torch.ones(2, 3, requires_grad: true)).sum().backward();

        string[] traces = sink.Entries.Where(e => e.Level == LogLevel.Trace).Select(e => e.Message).ToArray();
        Assert.That(traces, Has.Some.Contains("Apply 'TestReLU'").And.Some.Contains("[2, 3]"));
        Assert.That(traces, Has.Some.Contains("Backward 'TestReLU'"));
    }

    [Test]
    public void Logging_TraceEnabledWithoutTraceCalls_NoLinePerCall()
    {
        var sink = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(b => b.AddProvider(sink).SetMinimumLevel(LogLevel.Trace));
        AutogradDiagnostics.LoggerFactory = factory;
        using (NewDisposeScope())
        {
            for (int i = 0; i < 10; i++)
                TestUtil.Relu.Apply(torch.ones(2, requires_grad: true)).sum().backward();
        }
        Assert.That(sink.Entries.Where(e => e.Level == LogLevel.Trace), Is.Empty);
    }

    [Test]
    public void Logging_InformationLevel_NoTraceEntries()
    {
        var sink = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(b => b.AddProvider(sink).SetMinimumLevel(LogLevel.Information));
        AutogradDiagnostics.LoggerFactory = factory;
        using (NewDisposeScope())
            TestUtil.Relu.Apply(torch.ones(2, requires_grad: true)).sum().backward();
        Assert.That(sink.Entries, Is.Empty);
    }

    [Test]
    public void Meter_ApplyAndBackward_CountersMeasured()
    {
        var totals = new ConcurrentDictionary<string, long>();
        var perFunction = new ConcurrentDictionary<string, long>();
        var durations = new ConcurrentBag<(string Function, double Seconds)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == AutogradDiagnostics.MeterName)
                l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            totals.AddOrUpdate(instrument.Name, value, (_, v) => v + value);
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                if (tag.Key == AutogradDiagnostics.FunctionTag)
                    perFunction.AddOrUpdate(instrument.Name + "/" + tag.Value, value, (_, v) => v + value);
            }
        });
        listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) =>
        {
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                if (instrument.Name == "customautograd.backward.duration" && tag.Key == AutogradDiagnostics.FunctionTag)
                    durations.Add(((string)tag.Value!, value));
            }
        });
        listener.Start();

        UnaryFunction failing = AutogradFunction.Create("MeteredFailure", (ctx, x) => x * 2, (ctx, g) => throw new InvalidOperationException("m"));
        using (NewDisposeScope())
        {
            for (int i = 0; i < 3; i++)
                TestUtil.Relu.Apply(torch.ones(2, requires_grad: true)).sum().backward();
            Assert.Catch(() => failing.Apply(torch.ones(2, requires_grad: true)).sum().backward());
        }
        TestUtil.WaitForLiveNodes(0);

        Assert.That(totals.GetValueOrDefault("customautograd.applications"), Is.GreaterThanOrEqualTo(4));
        Assert.That(totals.GetValueOrDefault("customautograd.backward.calls"), Is.GreaterThanOrEqualTo(4));
        Assert.That(totals.GetValueOrDefault("customautograd.backward.failures"), Is.GreaterThanOrEqualTo(1));
        Assert.That(totals.ContainsKey("customautograd.nodes.live"), Is.True);
        Assert.That(perFunction.GetValueOrDefault("customautograd.applications/TestReLU"), Is.GreaterThanOrEqualTo(3));
        Assert.That(perFunction.GetValueOrDefault("customautograd.backward.failures/MeteredFailure"), Is.EqualTo(1));
        Assert.That(durations.Count(d => d.Function == "TestReLU"), Is.GreaterThanOrEqualTo(3));
        Assert.That(durations.Count(d => d.Function == "MeteredFailure"), Is.EqualTo(1), "a failing Backward is timed too");
        Assert.That(durations.All(d => d.Seconds >= 0), Is.True);
    }

    [Test]
    public void Counters_ApplyAndBackward_CountExactly()
    {
        AutogradCounters before = AutogradDiagnostics.ReadCounters();
        using (NewDisposeScope())
        {
            Tensor x = torch.ones(2, requires_grad: true);
            TestUtil.Relu.Apply(x).sum().backward();
            Assert.Catch(() => ThrowsOnce.Apply(x).sum().backward());
        }
        TestUtil.WaitForLiveNodes(before.LiveNodes);
        AutogradCounters after = AutogradDiagnostics.ReadCounters();
        Assert.That(after.NodesCreated - before.NodesCreated, Is.EqualTo(2));
        Assert.That(after.BackwardCalls - before.BackwardCalls, Is.EqualTo(2));
        Assert.That(after.BackwardFailures - before.BackwardFailures, Is.EqualTo(1));
        Assert.That(after.LiveNodes, Is.EqualTo(before.LiveNodes));
        Assert.That(after.LiveSavedTensors, Is.EqualTo(before.LiveSavedTensors));
    }

    private static readonly UnaryFunction ThrowsOnce = AutogradFunction.Create(
        "CountedFailure", (ctx, x) => x * 2, (ctx, g) => throw new TimeoutException("counted"));

    [Test]
    public void LastBackwardException_AfterAFailure_IsThatException()
    {
        var thrown = new InvalidOperationException("the latest");
        UnaryFunction f = AutogradFunction.Create("Latest", (ctx, x) => x * 2, (ctx, g) => throw thrown);
        using (NewDisposeScope())
            Assert.Catch(() => f.Apply(torch.ones(2, requires_grad: true)).sum().backward());
        Assert.That(AutogradDiagnostics.LastBackwardException, Is.SameAs(thrown));
    }

    [Test]
    public void Logging_LoggerThrowsEverywhere_ApplyAndBackwardStillCorrect()
    {
        using var factory = LoggerFactory.Create(b => b.AddProvider(new ThrowingLoggerProvider()).SetMinimumLevel(LogLevel.Trace));
        using (new CapturedStderr())   // the first diagnostics failure is reported once on standard error
        {
            AutogradDiagnostics.LoggerFactory = factory;
            UnaryFunction failing = AutogradFunction.Create("FailsWhileLoggerThrows", (ctx, x) => x * 2, (ctx, g) => throw new ArithmeticException("own"));
            for (int i = 0; i < 100; i++)
            {
                using var scope = NewDisposeScope();
                Tensor x = torch.tensor(new[] { -1.0, 2.0 }, requires_grad: true);
                TestUtil.Relu.Apply(x).sum().backward();
                TestUtil.AssertClose(x.grad!, torch.tensor(new[] { 0.0, 1.0 }));
                // A failing Backward still reports its own exception, not the logger's.
                Exception? e = Assert.Catch(() => failing.Apply(torch.ones(1, requires_grad: true)).sum().backward());
                Assert.That(e!.Message, Does.Contain("ArithmeticException").And.Contain("own"));
            }
        }
        Assert.That(AutogradDiagnostics.DiagnosticsFailure, Is.Not.Null);
    }

    [Test]
    public void Meter_ListenerThrows_ApplyAndBackwardStillCorrect()
    {
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "CustomAutograd")
                l.EnableMeasurementEvents(instrument);
        };
        int measurements = 0;
        listener.SetMeasurementEventCallback<long>((_, _, _, _) =>
        {
            measurements++;
            throw new InvalidOperationException("listener failure");
        });
        listener.Start();
        using (new CapturedStderr())
        {
            for (int i = 0; i < 100; i++)
            {
                using var scope = NewDisposeScope();
                Tensor x = torch.tensor(new[] { -1.0, 2.0 }, requires_grad: true);
                TestUtil.Relu.Apply(x).sum().backward();
                TestUtil.AssertClose(x.grad!, torch.tensor(new[] { 0.0, 1.0 }));
            }
        }
        Assert.That(measurements, Is.GreaterThanOrEqualTo(200), "the listener was called (and threw) on every Apply and Backward");
        Assert.That(AutogradDiagnostics.DiagnosticsFailure, Is.Not.Null);
    }

    private sealed class ThrowingLoggerProvider : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new ThrowingLogger();

        public void Dispose()
        {
        }

        private sealed class ThrowingLogger : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => throw new InvalidOperationException("scope");

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception,
                                    Func<TState, Exception?, string> formatter) =>
                throw new InvalidOperationException("logger failure");
        }
    }

    private sealed record CapturedLog(LogLevel Level, string Message, Exception? Exception);

    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        public ConcurrentQueue<CapturedLog> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new CapturingLogger(this);

        public void Dispose()
        {
        }

        private sealed class CapturingLogger(CapturingLoggerProvider owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception,
                                    Func<TState, Exception?, string> formatter) =>
                owner.Entries.Enqueue(new CapturedLog(logLevel, formatter(state, exception), exception));
        }
    }
}
