// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// Activation checkpointing: the C# counterpart of PyTorch's <c>torch.utils.checkpoint</c> (its re-entrant
/// variant, made safe). A checkpointed segment runs its forward with grad mode off and keeps only its inputs;
/// the backward runs the segment again with grad mode on and passes the incoming gradients through the
/// recomputed graph. That costs about one more forward of the segment and saves the activations inside it.
/// </summary>
/// <remarks>
/// <para>Equivalences: <c>checkpoint(fn, x)</c> is <see cref="Run(Func{Tensor, Tensor}, Tensor, CheckpointOptions?)"/>,
/// <c>checkpoint(module, x)</c> is <see cref="Run(nn.Module{Tensor, Tensor}, Tensor, CheckpointOptions?)"/>,
/// <c>checkpoint_sequential(seq, segments, x)</c> is <see cref="Sequential(TorchSharp.Modules.Sequential, int, Tensor, CheckpointOptions?)"/>,
/// <c>preserve_rng_state</c> is <see cref="CheckpointOptions.PreserveRngState"/>, and <see cref="CheckpointModule"/>
/// wraps a module so that it is checkpointed wherever it is called (e.g. inside an <c>nn.Sequential</c>).</para>
/// <para>Semantics: the inputs (and the module's parameters) are saved variables, so changing one in place before
/// the backward is detected. The module forms pass the parameters through the checkpoint's graph node, so their
/// gradients are accumulated like any other and <see cref="Autograd.Grad"/> with respect to them works (PyTorch's
/// re-entrant variant refuses it); a function form does too once its captured tensors are declared in
/// <see cref="CheckpointOptions.Parameters"/>, and refuses it otherwise. Under <c>no_grad</c>, or when nothing the segment receives requires grad, the
/// segment simply runs. Nested checkpoints work. An exception in the recompute surfaces from <c>backward()</c> as
/// any failing Backward does, with the function name <c>Checkpoint</c>.</para>
/// </remarks>
public static class Checkpoint
{
    /// <summary>
    /// Runs a function of one tensor as a checkpointed segment. Equivalent to
    /// <c>torch.utils.checkpoint.checkpoint(function, input, use_reentrant=True)</c>.
    /// </summary>
    /// <param name="function">The segment. It runs twice (forward and recompute) and must compute the same
    /// thing both times. Parameters it captures get their gradients as with PyTorch's re-entrant checkpoint
    /// (a backward through the recomputed graph), or through the node when listed in
    /// <see cref="CheckpointOptions.Parameters"/>.</param>
    /// <param name="input">The input.</param>
    /// <param name="options">Options; <see cref="CheckpointOptions.Default"/> when null.</param>
    /// <returns>The segment's output, in the caller's dispose scope.</returns>
    public static Tensor Run(Func<Tensor, Tensor> function, Tensor input, CheckpointOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(input);
        return CheckpointFunction.Apply(xs => new[] { function(xs[0]!) }, new Tensor?[] { input }, null, options)[0];
    }

    /// <summary>
    /// Runs a function of several tensors with several tensor results as a checkpointed segment. Equivalent to
    /// <c>checkpoint(function, *inputs)</c>. Null inputs (optional tensors) reach the function as null.
    /// </summary>
    /// <param name="function">The segment (see <see cref="Run(Func{Tensor, Tensor}, Tensor, CheckpointOptions?)"/>).
    /// It must return tensors only: a null entry is refused with an error naming its position.</param>
    /// <param name="inputs">The inputs.</param>
    /// <param name="options">Options; <see cref="CheckpointOptions.Default"/> when null.</param>
    /// <returns>The outputs, in the order the function returned them.</returns>
    public static Tensor[] Run(Func<Tensor?[], Tensor[]> function, Tensor?[] inputs, CheckpointOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(inputs);
        return CheckpointFunction.Apply(function, (Tensor?[])inputs.Clone(), null, options);
    }

    /// <summary>
    /// Runs a function of one tensor and typed non-tensor arguments as a checkpointed segment; the arguments
    /// reach the function in the forward and in the recompute.
    /// </summary>
    /// <typeparam name="TArgs">The arguments' type (a number, a tuple, a record). Not a tensor, nor a tuple holding one:
    /// tensors are inputs (the array form), so that they are saved and get gradients.</typeparam>
    /// <param name="function">The segment.</param>
    /// <param name="input">The input.</param>
    /// <param name="args">The non-tensor arguments.</param>
    /// <param name="options">Options; <see cref="CheckpointOptions.Default"/> when null.</param>
    /// <returns>The segment's output.</returns>
    public static Tensor Run<TArgs>(Func<Tensor, TArgs, Tensor> function, Tensor input, TArgs args, CheckpointOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(input);
        RefuseTensorArgs(args);
        return CheckpointFunction.Apply(xs => new[] { function(xs[0]!, args) }, new Tensor?[] { input }, null, options)[0];
    }

    /// <summary>
    /// Runs a function of several tensors and typed non-tensor arguments as a checkpointed segment.
    /// </summary>
    /// <typeparam name="TArgs">The arguments' type. Not a tensor: tensors are inputs.</typeparam>
    /// <param name="function">The segment.</param>
    /// <param name="inputs">The tensor inputs (null entries allowed).</param>
    /// <param name="args">The non-tensor arguments.</param>
    /// <param name="options">Options; <see cref="CheckpointOptions.Default"/> when null.</param>
    /// <returns>The outputs.</returns>
    public static Tensor[] Run<TArgs>(Func<Tensor?[], TArgs, Tensor[]> function, Tensor?[] inputs, TArgs args, CheckpointOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(inputs);
        RefuseTensorArgs(args);
        return CheckpointFunction.Apply(xs => function(xs, args), (Tensor?[])inputs.Clone(), null, options);
    }

    /// <summary>
    /// Runs a module as a checkpointed segment: <c>module.call(input)</c> in the forward and again in the
    /// recompute. Equivalent to <c>checkpoint(module, input)</c>. The module's parameters become inputs of the
    /// checkpoint's graph node, so their gradients flow as without checkpointing.
    /// </summary>
    /// <param name="module">The module. Keep its state (e.g. <c>train()</c>/<c>eval()</c>) unchanged until the
    /// backward. Its buffers are updated twice (e.g. batch norm's running statistics), as in PyTorch.</param>
    /// <param name="input">The input.</param>
    /// <param name="options">Options; <see cref="CheckpointOptions.Parameters"/>, when set, adds tensors to the
    /// module's parameters.</param>
    /// <returns>The module's output.</returns>
    public static Tensor Run(nn.Module<Tensor, Tensor> module, Tensor input, CheckpointOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(input);
        return CheckpointFunction.Apply(xs => new[] { module.call(xs[0]!) }, new Tensor?[] { input }, module.parameters(), options)[0];
    }

    /// <summary>
    /// Runs a module of two tensors as a checkpointed segment (e.g. a block taking an input and a mask).
    /// </summary>
    /// <param name="module">The module (see <see cref="Run(nn.Module{Tensor, Tensor}, Tensor, CheckpointOptions?)"/>).</param>
    /// <param name="input1">The first input.</param>
    /// <param name="input2">The second input.</param>
    /// <param name="options">Options; <see cref="CheckpointOptions.Default"/> when null.</param>
    /// <returns>The module's output.</returns>
    public static Tensor Run(nn.Module<Tensor, Tensor, Tensor> module, Tensor input1, Tensor input2, CheckpointOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(input1);
        ArgumentNullException.ThrowIfNull(input2);
        return CheckpointFunction.Apply(xs => new[] { module.call(xs[0]!, xs[1]!) }, new Tensor?[] { input1, input2 },
                                        module.parameters(), options)[0];
    }

    /// <summary>
    /// Runs a sequential model in <paramref name="segments"/> chunks and checkpoints all but the last, as
    /// PyTorch's <c>checkpoint_sequential(sequential, segments, input)</c> does: every chunk but the last has
    /// <c>Count / segments</c> modules, and the last chunk (the rest) runs normally, keeping its activations for
    /// the backward that starts right after.
    /// </summary>
    /// <param name="sequential">The model.</param>
    /// <param name="segments">The number of chunks, from 1 (nothing checkpointed) to the number of modules.</param>
    /// <param name="input">The model's input.</param>
    /// <param name="options">Options for every checkpointed chunk.</param>
    /// <returns>The model's output.</returns>
    public static Tensor Sequential(TorchSharp.Modules.Sequential sequential, int segments, Tensor input, CheckpointOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(sequential);
        var modules = new nn.IModule<Tensor, Tensor>[sequential.Count];
        for (int i = 0; i < modules.Length; i++)
            modules[i] = sequential[i];
        return Sequential(modules, segments, input, options);
    }

    /// <summary>
    /// Runs a list of modules one after the other in <paramref name="segments"/> chunks and checkpoints all but
    /// the last, as <c>checkpoint_sequential(list_of_modules, segments, input)</c> does.
    /// </summary>
    /// <param name="modules">The modules, applied in order. The parameters of those that are <c>nn.Module</c>s
    /// are routed through each chunk's node.</param>
    /// <param name="segments">The number of chunks, from 1 (nothing checkpointed) to the number of modules.</param>
    /// <param name="input">The first module's input.</param>
    /// <param name="options">Options for every checkpointed chunk.</param>
    /// <returns>The last module's output.</returns>
    public static Tensor Sequential(IReadOnlyList<nn.IModule<Tensor, Tensor>> modules, int segments, Tensor input,
                                    CheckpointOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(modules);
        ArgumentNullException.ThrowIfNull(input);
        for (int i = 0; i < modules.Count; i++)
        {
            if (modules[i] is null)
                throw new ArgumentException($"modules[{i}] is null.", nameof(modules));
        }
        if (segments < 1 || segments > Math.Max(modules.Count, 1))
        {
            throw new ArgumentOutOfRangeException(nameof(segments), segments,
                $"segments must be between 1 and the number of modules ({modules.Count}).");
        }

        int size = modules.Count / segments;
        int checkpointed = size * (segments - 1);
        Tensor x = input;
        for (int start = 0; start < checkpointed; start += size)
        {
            int first = start;
            Tensor next = CheckpointFunction.Apply(xs => new[] { RunChunk(modules, first, size, xs[0]!) }, new Tensor?[] { x },
                                                   ParametersOf(modules, first, size), options)[0];
            DisposeIntermediate(x, next, input);
            x = next;
        }
        Tensor output = RunChunk(modules, checkpointed, modules.Count - checkpointed, x);
        DisposeIntermediate(x, output, input);
        return output;
    }

    // Runs modules[start..start+count) on x, disposing the intermediate results as it goes.
    private static Tensor RunChunk(IReadOnlyList<nn.IModule<Tensor, Tensor>> modules, int start, int count, Tensor x)
    {
        Tensor chunkInput = x;
        for (int i = start; i < start + count; i++)
        {
            Tensor next = modules[i].call(x);
            DisposeIntermediate(x, next, chunkInput);
            x = next;
        }
        return x;
    }

    // Disposes an intermediate result once the next module has used it, as TorchSharp's Sequential does: the
    // autograd graph holds what the backward needs, so the caller's dispose scope does not keep every activation
    // (or chunk output) alive until it ends. The caller's input and a result passed on unchanged are kept.
    private static void DisposeIntermediate(Tensor used, Tensor next, Tensor input)
    {
        if (!ReferenceEquals(used, input) && !ReferenceEquals(used, next))
            used.Dispose();
    }

    private static List<Tensor> ParametersOf(IReadOnlyList<nn.IModule<Tensor, Tensor>> modules, int start, int count)
    {
        var parameters = new List<Tensor>();
        for (int i = start; i < start + count; i++)
        {
            if (modules[i] is nn.Module module)
                parameters.AddRange(module.parameters());
        }
        return parameters;
    }

    private static void RefuseTensorArgs<TArgs>(TArgs args)
    {
        if (Graph.TensorSearch.Contains(args))
        {
            throw new ArgumentException(
                "a tensor was passed as the non-tensor arguments of a checkpoint; pass tensors as inputs (the array " +
                "form) so that they are saved and get gradients.", nameof(args));
        }
    }
}
