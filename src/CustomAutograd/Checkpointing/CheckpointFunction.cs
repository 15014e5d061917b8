// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Linq;
using CustomAutograd.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd;

// The custom function behind every checkpoint (PyTorch's re-entrant CheckpointFunction), written with
// the library's public API only. Its Forward runs the segment with grad mode off and saves nothing but the
// segment's inputs (and parameters) as saved variables; its Backward recomputes the segment with grad mode on
// and passes the incoming gradients through the recomputed graph.
internal static class CheckpointFunction
{
    // The name in error messages (a failing recompute reads "Checkpoint: &lt;type&gt;: &lt;message&gt;").
    internal const string Name = "Checkpoint";

    private static readonly MultiFunction<CheckpointCall> Function =
        AutogradFunction.CreateMultiWithArgs<CheckpointCall>(Name, Forward, Backward);

    // Note [checkpoint barrier]: under create_graph the recompute must run on tensors that are connected
    // to the real inputs, or the gradients it returns would not depend on them and a double backward would miss
    // every term through the inputs. Running on the real inputs instead would let the inner gradient call walk
    // past them into the outer graph whenever a parameter lies upstream of an input (tied weights), counting that
    // path twice. The barrier is an identity whose backward returns nothing while the checkpoint's own gradient
    // call runs and passes the gradient through afterwards, when a later backward differentiates the result.
    // Note [checkpoint validity]: a function form that declares no parameters accumulates into whatever leaves its
    // recompute reaches, with a plain backward, as PyTorch's re-entrant checkpoint does; inside Autograd.Grad or a
    // backward given `inputs` that would write into .grad behind the caller's back, so it is refused there, as
    // PyTorch refuses it. libtorch tells (Engine::is_checkpoint_valid, per thread, and false in every pass nested in
    // a partial one), but the routed path's own gradient call is such a pass: while it runs, this thread-static
    // carries the validity of the pass that started the outer checkpoint's backward instead.
    [ThreadStatic]
    private static bool? t_outerValidity;

    private static readonly UnaryFunction<BarrierSwitch> Barrier = AutogradFunction.CreateWithArgs<BarrierSwitch>(
        Name + " input barrier",
        static (ctx, x, gate) => x,
        static (ctx, g, gate) => gate.Blocked ? null : g);

    // Runs run as a checkpointed segment (or plainly, when there is nothing to checkpoint).
    // run: The segment.
    // inputs: Its tensor inputs (null entries allowed, passed on as null).
    // moduleParameters: The parameters of the module(s) run, or null for a function form.
    // options: The options; the defaults when null.
    // Returns The segment's outputs.
    internal static Tensor[] Apply(Func<Tensor?[], Tensor[]> run, Tensor?[] inputs, IEnumerable<Tensor>? moduleParameters,
                                   CheckpointOptions? options)
    {
        options ??= CheckpointOptions.Default;
        for (int i = 0; i < inputs.Length; i++)
        {
            if (inputs[i] is { IsInvalid: true })
                throw new ObjectDisposedException(nameof(Tensor), $"{Name}: input {i} has been disposed.");
        }

        // Under no_grad (or inference mode) nothing would be saved anyway: the segment simply runs.
        if (!torch.is_grad_enabled())
            return CheckOutputs(run(inputs));

        bool routesParameters = moduleParameters is not null || options.Parameters is not null;
        List<Tensor> parameters = CollectParameters(moduleParameters, options.Parameters);
        bool anyRequiresGrad = parameters.Count > 0 || Array.Exists(inputs, t => t is { requires_grad: true });
        // Nothing the node could connect to: run the segment as it is. Its outputs still carry the graph of any
        // tensor it captures, so those gradients stay right (PyTorch's re-entrant variant drops them); memory is
        // not saved in this case.
        if (!anyRequiresGrad)
            return CheckOutputs(run(inputs));

        bool usesCuda = options.PreserveRngState &&
                        (Array.Exists(inputs, t => t is not null && t.device_type == DeviceType.CUDA) ||
                         parameters.Exists(t => t.device_type == DeviceType.CUDA));
        var call = new CheckpointCall(run, inputs.Length, routesParameters, options, usesCuda);
        var all = new Tensor?[inputs.Length + parameters.Count];
        Array.Copy(inputs, all, inputs.Length);
        for (int k = 0; k < parameters.Count; k++)
            all[inputs.Length + k] = parameters[k];
        return Function.Apply(all, call);
    }

    // The parameters that need gradients, each once, in order: the module's, then the listed ones.
    private static List<Tensor> CollectParameters(IEnumerable<Tensor>? moduleParameters, IReadOnlyList<Tensor>? listed)
    {
        var result = new List<Tensor>();
        if (moduleParameters is not null)
        {
            foreach (Tensor p in moduleParameters)
                Add(p, "a module parameter");
        }
        if (listed is not null)
        {
            for (int i = 0; i < listed.Count; i++)
                Add(listed[i], $"{nameof(CheckpointOptions)}.{nameof(CheckpointOptions.Parameters)}[{i}]");
        }
        return result;

        void Add(Tensor? p, string what)
        {
            if (p is null)
                throw new ArgumentException($"{Name}: {what} is null.");
            if (p.IsInvalid)
                throw new ObjectDisposedException(nameof(Tensor), $"{Name}: {what} has been disposed.");
            if (!p.requires_grad || result.Exists(q => ReferenceEquals(q, p)))
                return;
            if (!p.is_leaf)
            {
                throw new ArgumentException(
                    $"{Name}: {what} requires grad but is not a leaf (it was computed from other tensors). " +
                    "Pass such a tensor to the segment as an input instead; parameters must be leaves.");
            }
            result.Add(p);
        }
    }

    private static Tensor[] Forward(ForwardContext ctx, Tensor?[] all, CheckpointCall call)
    {
        // Unused outputs give null gradients: the recompute then backpropagates only what was used.
        ctx.SetMaterializeGrads(false);
        // The inputs and parameters are all the node keeps: saved variables, so in-place changes are detected.
        ctx.SaveForBackward(all);
        if (call.Options.PreserveRngState)
            CheckpointRng.Capture(ctx, call);

        Tensor[] outputs = CheckOutputs(call.Run(Inputs(all, call.InputCount)));
        var described = new (long[] Shape, ScalarType Type)[outputs.Length];
        for (int i = 0; i < outputs.Length; i++)
        {
            // Under no_grad only a tensor the segment captured and returned as it is can require grad here. The node
            // would take it over as its own output (Note [same tensor] in node.cpp): the captured tensor would stop
            // being a leaf, and the recompute, returning it again, would run into this very node. Its value is
            // returned instead; the gradient reaching it flows into the captured tensor through the recompute.
            if (outputs[i].requires_grad && Graph.References.IndexOf(all, outputs[i]) < 0)
                outputs[i] = outputs[i].detach();
            described[i] = (outputs[i].shape, outputs[i].dtype);
            if (!outputs[i].is_floating_point() && !outputs[i].is_complex())
                ctx.MarkNonDifferentiable(outputs[i]);
        }
        call.Outputs = described;
        return outputs;
    }

    private static Tensor?[] Backward(BackwardContext ctx, Tensor?[] grads, CheckpointCall call)
    {
        IReadOnlyList<Tensor?> saved = ctx.SavedTensors;
        IReadOnlyList<bool> needs = ctx.NeedsInputGrad;
        var result = new Tensor?[saved.Count];
        if (Array.TrueForAll(grads, g => g is null))
            return result;

        // Note [checkpoint validity]
        bool valid = t_outerValidity ?? NativeRuntime.IsCheckpointValid() ?? true;
        if (!valid && !call.RoutesParameters)
        {
            throw new InvalidOperationException(
                "a checkpointed function that declares no parameters cannot be differentiated by Autograd.Grad or by a " +
                "backward given `inputs`: its recompute passes gradients on with a plain backward, which would write " +
                "into the .grad of the tensors it captured (PyTorch refuses this too). Declare the tensors the " +
                $"segment captures that need gradients in {nameof(CheckpointOptions)}.{nameof(CheckpointOptions.Parameters)} " +
                "(an empty array when there are none), or checkpoint a module.");
        }

        // libtorch runs a backward with grad mode on exactly when it builds a graph of the gradients (create_graph).
        bool createGraph = torch.is_grad_enabled();
        int n = call.InputCount;
        BarrierSwitch? gate = createGraph ? new BarrierSwitch() : null;
        var inputs = new Tensor?[n];
        for (int i = 0; i < n; i++)
        {
            if (saved[i] is not { } x)
                continue;
            if (!needs[i])
                inputs[i] = x.detach();
            else if (gate is null)
                inputs[i] = x.detach().requires_grad_(true);
            else
                inputs[i] = Barrier.Apply(x, gate);   // Note [checkpoint barrier]
        }

        Tensor[] outputs;
        if (call.Options.PreserveRngState)
        {
            using CheckpointRng.Fork fork = CheckpointRng.Enter(ctx, call);
            outputs = Recompute(call, inputs);
        }
        else
        {
            outputs = Recompute(call, inputs);
        }

        // Only outputs that were used and that depend on something differentiable take part.
        var used = new List<Tensor>(outputs.Length);
        var usedGrads = new List<Tensor>(outputs.Length);
        for (int j = 0; j < outputs.Length; j++)
        {
            if (grads[j] is { } g && outputs[j].requires_grad)
            {
                used.Add(outputs[j]);
                usedGrads.Add(g);
            }
        }
        if (used.Count == 0)
            return result;

        bool? outerValidity = t_outerValidity;
        t_outerValidity = valid;
        try
        {
            if (call.RoutesParameters)
                GradientsThroughNode(saved, needs, inputs, used, usedGrads, createGraph, result);
            else
                GradientsIntoLeaves(needs, inputs, used, usedGrads, createGraph, result);
        }
        finally
        {
            t_outerValidity = outerValidity;
            if (gate is not null)
                gate.Blocked = false;
        }
        return result;
    }

    private static Tensor[] Recompute(CheckpointCall call, Tensor?[] inputs)
    {
        Tensor[] outputs;
        using (torch.enable_grad())
            outputs = CheckOutputs(call.Run(inputs));

        (long[] Shape, ScalarType Type)[] expected = call.Outputs!;
        string? mismatch = outputs.Length != expected.Length
            ? $"{outputs.Length} outputs where the forward returned {expected.Length}"
            : null;
        for (int i = 0; mismatch is null && i < outputs.Length; i++)
        {
            if (!outputs[i].shape.SequenceEqual(expected[i].Shape) || outputs[i].dtype != expected[i].Type)
            {
                mismatch = $"output {i} as {outputs[i].dtype} [{string.Join(", ", outputs[i].shape)}] where the forward " +
                           $"returned {expected[i].Type} [{string.Join(", ", expected[i].Shape)}]";
            }
        }
        if (mismatch is null)
            return outputs;
        throw new InvalidOperationException(
            $"the recomputed segment returned {mismatch}. A checkpointed segment must compute the same thing in the " +
            "backward as in the forward: keep whatever it depends on (a module's training flag, captured values) " +
            "unchanged until the backward.");
    }

    // Parameters routed through the node: one gradient call on the recomputed graph, with respect to the
    // recompute's inputs and the parameters, whose results become the node's input gradients. Nothing outside is
    // touched, so this works under Autograd.Grad too.
    private static void GradientsThroughNode(IReadOnlyList<Tensor?> saved, IReadOnlyList<bool> needs, Tensor?[] inputs,
                                             List<Tensor> used, List<Tensor> usedGrads, bool createGraph, Tensor?[] result)
    {
        var wrt = new List<Tensor>(saved.Count);
        var at = new List<int>(saved.Count);
        for (int i = 0; i < saved.Count; i++)
        {
            Tensor? t = i < inputs.Length ? inputs[i] : saved[i];
            if (needs[i] && t is not null && t.requires_grad)
            {
                wrt.Add(t);
                at.Add(i);
            }
        }
        if (wrt.Count == 0)
            return;
        Tensor?[] grads = Autograd.Grad(used, wrt, usedGrads, retainGraph: createGraph, createGraph: createGraph, allowUnused: true);
        for (int k = 0; k < grads.Length; k++)
            result[at[k]] = grads[k];
    }

    // Parameters not declared (function forms): PyTorch's re-entrant behaviour. A backward through the recomputed
    // graph accumulates into every leaf the segment reached (captured parameters included), and the inputs'
    // gradients are read from the recompute's inputs: detached leaves, or under create_graph the barrier's outputs
    // (Note [checkpoint barrier]), which keep their gradient only when asked to. Their .grad is cleared after
    // reading: under create_graph it refers back to the recomputed graph, which saves the tensor itself.
    private static void GradientsIntoLeaves(IReadOnlyList<bool> needs, Tensor?[] inputs, List<Tensor> used,
                                            List<Tensor> usedGrads, bool createGraph, Tensor?[] result)
    {
        for (int i = 0; i < inputs.Length; i++)
        {
            if (needs[i] && inputs[i] is { is_leaf: false } t)
                t.retain_grad();
        }
        Autograd.Backward(used, usedGrads, retainGraph: createGraph, createGraph: createGraph);
        for (int i = 0; i < inputs.Length; i++)
        {
            if (needs[i] && inputs[i] is { } t)
            {
                result[i] = t.grad;
                t.grad = null;
            }
        }
    }

    private static Tensor?[] Inputs(Tensor?[] all, int count)
    {
        var inputs = new Tensor?[count];
        Array.Copy(all, inputs, count);
        return inputs;
    }

    // Refuses what is not a list of live tensors, naming the position.
    internal static Tensor[] CheckOutputs(Tensor[]? outputs)
    {
        if (outputs is null)
            throw new CustomAutogradException(Name, "the checkpointed segment returned null instead of its outputs.", null);
        if (outputs.Length == 0)
            throw new CustomAutogradException(Name, "the checkpointed segment returned no output.", null);
        for (int i = 0; i < outputs.Length; i++)
        {
            if (outputs[i] is null)
            {
                throw new CustomAutogradException(
                    Name, $"the checkpointed segment returned null as output {i}. A checkpointed segment returns tensors " +
                    "only: compute non-tensor results outside it, or return them as tensors.", null);
            }
            if (outputs[i].IsInvalid)
                throw new CustomAutogradException(Name, $"the checkpointed segment returned a disposed tensor as output {i}.", null);
        }
        return outputs;
    }

    // Whether the barrier blocks (during the checkpoint's own gradient call) or passes gradients.
    private sealed class BarrierSwitch
    {
        internal volatile bool Blocked = true;
    }
}
